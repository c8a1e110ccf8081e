"""Cold-start latency of `advisor plan --json`, against a bare Python start.

Run: .venv/bin/python benchmarks/plan_latency.py [--runs 15]
Prints the medians and writes benchmarks/results/plan_latency.md. The
target (issue 3): under 0.5 s, which needs `advisor plan` to import nothing
heavy (torch, transformers, peft, datasets, textual, ...).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROFILE = ["plan", "--goal", "behavior", "--task", "instruction", "--examples", "3000", "--quality", "high",
           "--model", "llama-3.1-8b", "--gpu", "rtx4090", "--json"]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_of(command: list[str], runs: int) -> float:
    timed(command)  # warm the file cache, not the interpreter
    return statistics.median(timed(command) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    bare = median_of([sys.executable, "-c", "pass"], args.runs)
    plan = median_of([sys.executable, "-m", "advisor", *PROFILE], args.runs)
    lines = [
        "# `advisor plan --json` cold-start latency",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}; "
        f"median of {args.runs} cold processes (`benchmarks/plan_latency.py`).",
        "",
        "| command | median s |",
        "|---|---|",
        f"| `python -c pass` (bare interpreter) | {bare:.3f} |",
        f"| `python -m advisor {' '.join(PROFILE)}` | {plan:.3f} |",
        "",
        f"advisor's own share: {plan - bare:.3f} s. Target: under 0.5 s in all.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).parent / "results" / "plan_latency.md"
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
