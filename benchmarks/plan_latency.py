"""Cold-start latency of `advisor plan --json` for typical profiles, against a bare Python start.

Run: .venv/bin/python benchmarks/plan_latency.py [--runs 15]
Prints the medians and writes benchmarks/results/plan_latency.md. The target
(issue 17): under 0.25 s, which needs `advisor plan` to import nothing heavy
(torch, transformers, peft, datasets, textual, ...) and to plan in a few tens of ms.

Each command runs once first with bytecode writing allowed, so the timed runs
find what an installed advisor has after its first run: .pyc files and the
knowledge base's TOML parse cache (advisor/toml_cache.py). Without them (this
sandbox sets PYTHONDONTWRITEBYTECODE=1) every start compiles ~40 modules again.
Wall time is what a person waits; CPU time (user + system of the process) is
less sensitive to other work on a shared machine, so both are reported, with
the load average. `--instructions` adds each command's instruction count under
valgrind's callgrind: slow (about 20 s a command) but the same on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROFILES = {
    "default profile": ["plan", "--json"],
    "llama-3.1-8b on rtx4090": ["plan", "--model", "llama-3.1-8b", "--gpu", "rtx4090", "--json"],
    "behavior, instruction, 3000 high-quality examples, llama-3.1-8b on rtx4090": [
        "plan", "--goal", "behavior", "--task", "instruction", "--examples", "3000", "--quality", "high",
        "--model", "llama-3.1-8b", "--gpu", "rtx4090", "--json"],
    "all-minilm-l6-v2 classification, 10000 examples, cpu": [
        "plan", "--model", "all-minilm-l6-v2", "--task", "classification", "--examples", "10000", "--gpu", "cpu",
        "--json"],
}
TARGET_S = 0.25
#: What any CLI built on pydantic models and pluggy plugins pays before its own code runs: both imported, the
#: first model class built (which imports pydantic's schema machinery and importlib.metadata) and dumped.
FLOOR = ("import os; os.environ['PYDANTIC_DISABLE_PLUGINS'] = '__all__'; import pluggy; from pydantic import BaseModel; "
         "exec('class Floor(BaseModel):\\n    x: int = 1'); Floor().model_dump_json()")
#: The results file keeps what follows this line (the written account of the measurements) when it is rewritten.
NOTES = "<!-- notes: kept when the table above is measured again -->"
#: The timed runs' environment: bytecode and the TOML cache may be written (the warm-up writes them).
ENVIRONMENT = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENVIRONMENT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def medians(commands: list[list[str]], runs: int) -> list[tuple[float, float]]:
    """(median wall, median CPU) seconds of each command. The commands take turns, run after run, so a machine
    that slows down or speeds up midway (this VM varies by 2x within minutes) weighs on all of them alike."""
    for command in commands:
        timed(command)  # warm the file cache and write the bytecode, not the interpreter
    samples: list[list[tuple[float, float]]] = [[] for _ in commands]
    for _ in range(runs):
        for command, taken in zip(commands, samples):
            taken.append(timed(command))
    return [(statistics.median(wall for wall, _ in taken), statistics.median(cpu for _, cpu in taken))
            for taken in samples]


def instructions(command: list[str]) -> float:
    """Millions of instructions `command` executes, counted by callgrind."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENVIRONMENT)
        summary = next(line for line in out.read_text().splitlines() if line.startswith(("summary:", "totals:")))
        return int(summary.split()[1]) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--instructions", action="store_true", help="also count instructions (needs valgrind)")
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind on PATH")
    commands = {"`python -c pass` (bare interpreter)": [sys.executable, "-c", "pass"],
                "pydantic + pluggy floor: import both, build one model, dump it": [sys.executable, "-c", FLOOR]}
    commands.update({f"{name}: `advisor {' '.join(profile)}`": [sys.executable, "-m", "advisor", *profile]
                     for name, profile in PROFILES.items()})
    load_before = os.getloadavg()
    rows = [(name, *measured) for name, measured in zip(commands, medians(list(commands.values()), args.runs))]
    load_after = os.getloadavg()
    counts = [instructions(command) for command in commands.values()] if args.instructions else []
    bare, floor = rows[0][1], rows[1][1]
    worst = max(wall for _, wall, _ in rows[2:])
    lines = [
        "# `advisor plan --json` cold-start latency",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}; median of {args.runs} cold processes each (`benchmarks/plan_latency.py`), "
        f"the commands taking turns, after one run each that wrote the bytecode and the caches. Load average (1 min) "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        "",
        "| command | median wall s | median CPU s |" + (" M instructions |" if counts else ""),
        "|---|---|---|" + ("---|" if counts else ""),
        *(f"| {name} | {wall:.3f} | {cpu:.3f} |" + (f" {counts[index]:.0f} |" if counts else "")
          for index, (name, wall, cpu) in enumerate(rows)),
        "",
        f"Slowest profile: {worst:.3f} s wall (advisor's own share above the pydantic + pluggy floor "
        f"{worst - floor:.3f} s; above the bare interpreter {worst - bare:.3f} s). Target: under {TARGET_S} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).parent / "results" / "plan_latency.md"
    notes = out.read_text(encoding="utf-8").partition(NOTES)[2] if out.exists() else ""
    out.write_text(text + (f"\n{NOTES}{notes}" if notes else ""), encoding="utf-8")


if __name__ == "__main__":
    main()
