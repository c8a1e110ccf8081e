"""Cold-process time of `advisor validate` on Banking77's train.csv (10,003 rows, 77 intents).

Run: .venv/bin/python benchmarks/validate_speed.py [--runs 5] [--data PATH]
Prints the median and writes benchmarks/results/validate_speed.md. The
target (issue 5): under 5 s, for the whole report (loading, per-record
validation, label statistics, exact and MinHash near-duplicates, conflicting
labels, estimated token lengths), in a fresh interpreter each time.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BANKING77 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77" / "train.csv"
TARGET_S = 5.0


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        sys.exit(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data", type=Path, default=BANKING77)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"no data file at {args.data} (Banking77 lives in ../shared/data beside the repository)")
    command = [sys.executable, "-m", "advisor", "validate", str(args.data), "--json"]
    timed(command)  # warm the file cache, not the interpreter
    times = [timed(command) for _ in range(args.runs)]
    median = statistics.median(times)
    lines = [
        "# `advisor validate` speed on Banking77 train.csv",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}; "
        f"median of {args.runs} cold processes (`benchmarks/validate_speed.py`), each a fresh interpreter.",
        "",
        "| command | median s | runs s |",
        "|---|---|---|",
        f"| `python -m advisor validate {args.data.name} --json` | {median:.2f} | {', '.join(f'{t:.2f}' for t in times)} |",
        "",
        f"Target: under {TARGET_S:.0f} s. {'Met' if median < TARGET_S else 'NOT met'}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(__file__).parent / "results" / "validate_speed.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
