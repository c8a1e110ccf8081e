"""Stands in for `advisor execute` in the run-screen tests: the same arguments, the same outputs.

It writes DIR/progress.jsonl a step at a time, prints a line per step, and on
SIGINT prints the checkpoint and resume lines the real executor prints, then
exits 130. `--steps` and `--delay` set its pace; `--fail CODE` fails as a refused run does.
"""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("plan")
parser.add_argument("--data", required=True)
parser.add_argument("--output-dir", required=True)
parser.add_argument("--steps", type=int, default=4)
parser.add_argument("--delay", type=float, default=0.02)
parser.add_argument("--fail", type=int, help="exit with this code after an error line and some noise")
args = parser.parse_args()
out = Path(args.output_dir)
out.mkdir(parents=True)
method = json.loads(Path(args.plan).read_text())["training"]["method"]
print(f"training {method} on {args.data}", flush=True)
print(f"columns {os.environ.get('COLUMNS')}: " + "a long line of the resolved run " * 4, flush=True)
if args.fail:
    print(f"error: '{args.data}' has 3 invalid record(s); fix them (see `advisor validate`) before training", flush=True)
    print("  (a trailing line of library noise)", flush=True)
    sys.exit(args.fail)


def stop(signum, frame):
    (out / "stopped").write_text(signal.Signals(signum).name)  # for the tests: the run saw the stop
    print(f"saved checkpoint {out}/checkpoint-last", flush=True)
    print(f"resume with: advisor execute {out}/plan.json --data {args.data} --output-dir {out} --resume", flush=True)
    sys.exit(130)


signal.signal(signal.SIGINT, stop)
with open(out / "progress.jsonl", "a", encoding="utf-8") as progress:
    for step in range(1, args.steps + 1):
        loss = 2.0 / step
        progress.write(json.dumps({"step": step, "max_steps": args.steps, "loss": loss, "eta_s": 1.0}) + "\n")
        progress.flush()
        print(f"step {step}/{args.steps} loss {loss:.3f}", flush=True)
        time.sleep(args.delay)
metrics = {"status": "completed", "main": {"final_eval": {"eval_loss": 0.61, "eval_accuracy": 0.9}},
           "kfold_summary": {"accuracy": {"mean": 0.88, "std": 0.02, "values": [0.86, 0.9]}}, "test": {}}
(out / "metrics.json").write_text(json.dumps(metrics))
print("done", flush=True)
