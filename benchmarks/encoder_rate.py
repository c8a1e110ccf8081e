"""Which body learning rate does the embedded MiniLM take? A sweep scored on validation data only.

Banking77 on all-MiniLM-L6-v2, CPU: the plan's own recipe (`advisor.demo.demo_plan`: full fine-tuning,
5 epochs, batch 32, cosine, 10% warmup, weight decay 0.01, a stratified 90/10 split, early stopping
with the best checkpoint kept), run through the local backend once per arm with only the learning
rates changed:

- body 2e-5 and 5e-5, the ends of the BERT grid (training.encoder-rate), head 1e-3 (training.new-layer-rate);
- body 5e-5, head 2e-3: the grid's body rate with the small-encoder head rate, to tell the two apart;
- body 2e-4, head 2e-3 (training.small-encoder-rate).

Each arm is scored by its best validation accuracy on the validation split the plan holds out of
the training file (stratified; 20% below 5,000 rows); test.csv is never read, so the choice it
supports is made on validation data. The figure is optimistic by the same amount for every arm (the
checkpoint kept is the best on that split).

    .venv/bin/python benchmarks/encoder_rate.py --per-label 40   # 3,075 rows, ~3 min an arm on 2 idle cores
    .venv/bin/python benchmarks/encoder_rate.py                  # all of train.csv, ~10 min an arm
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from advisor.demo import DEMO_PROFILE, TRAIN, demo_plan, run_plan
from advisor.models import ParamGroup, Plan
from recipe_quality import RESULTS, subset

#: (body rate, head rate, the rule that gives that pair in a plan)
ARMS = ((2e-5, 1e-3, "training.encoder-rate, low end"), (5e-5, 1e-3, "training.encoder-rate, high end"),
        (5e-5, 2e-3, "the grid's body rate, the small-encoder head rate"), (2e-4, 2e-3, "training.small-encoder-rate"))


def with_rates(plan: Plan, body: float, head: float) -> Plan:
    groups = [ParamGroup(name="new", learning_rate=head, rule="benchmark"),
              ParamGroup(name="pretrained", learning_rate=body, rule="benchmark")]
    hp = plan.training.hyperparameters.model_copy(update={"learning_rate": body, "param_groups": groups})
    return plan.model_copy(update={"training": plan.training.model_copy(update={"hyperparameters": hp})})


def measure(plan: Plan, body: float, head: float, rule: str, train: Path, work: Path) -> dict:
    print(f"--- body {body:g}, head {head:g} ({rule})", file=sys.stderr)
    started = time.monotonic()
    metrics = run_plan(with_rates(plan, body, head), train, work / f"body-{body:g}-head-{head:g}")
    main = metrics.main
    return {"body_rate": body, "head_rate": head, "rule": rule,
            "validation_accuracy": main.final_eval.get("accuracy"),
            "validation_macro_f1": main.final_eval.get("macro_f1"),
            "validation_examples": main.validation_examples, "train_examples": main.train_examples,
            "steps": main.steps, "kept_step": main.best_step, "early_stopped": main.early_stopped,
            "train_wall_time_s": round(time.monotonic() - started, 1)}


def report(results: list[dict], per_label: int | None, rows: int) -> str:
    data = f"a stratified subset of train.csv, {per_label} rows per label ({rows} rows)" if per_label \
        else f"all of train.csv ({rows} rows)"
    lines = ["# Encoder learning rate: a validation sweep", "",
             f"Banking77 (77 labels) on the embedded all-MiniLM-L6-v2 (6 layers, hidden 384), CPU "
             f"({platform.machine()}, {platform.python_version()}), trained on {data} with the plan's recipe; "
             "only the learning rates differ. Scored on the plan's stratified validation split of that data "
             f"({results[0]['validation_examples']} rows; best checkpoint); test.csv is never read.", "",
             "| body rate | head rate | rule | validation accuracy | validation macro-F1 | train / validation | "
             "steps (kept) | wall time |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['body_rate']:g} | {r['head_rate']:g} | {r['rule']} | {r['validation_accuracy']:.4f} | "
                     f"{r['validation_macro_f1']:.4f} | {r['train_examples']} / {r['validation_examples']} | "
                     f"{r['steps']} ({r['kept_step']}) | {r['train_wall_time_s']:.0f} s |")
    command = ".venv/bin/python benchmarks/encoder_rate.py" + (f" --per-label {per_label}" if per_label else "")
    lines += ["", f"Reproduce: `{command}`"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-label", type=int, help="train on this many rows per label of train.csv")
    parser.add_argument("--output", default=str(RESULTS / "encoder_rate"), help="results path without extension")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="encoder-rate-") as scratch:
        work = Path(scratch)
        train = subset(TRAIN, work / "train.csv", args.per_label * 77) if args.per_label else TRAIN
        with open(train, encoding="utf-8", newline="") as handle:
            rows = sum(1 for _ in csv.DictReader(handle))
        # The plan is made for the data it trains on; each arm changes its learning rates only.
        plan = demo_plan(DEMO_PROFILE.model_copy(update={"data": str(train)}))
        results = [measure(plan, body, head, rule, train, work) for body, head, rule in ARMS]
    output = Path(args.output)
    output.with_suffix(".json").write_text(json.dumps({"per_label": args.per_label, "rows": rows,
                                                       "results": results}, indent=2) + "\n")
    output.with_suffix(".md").write_text(report(results, args.per_label, rows))
    for r in results:
        print(f"body {r['body_rate']:g} head {r['head_rate']:g}: validation accuracy {r['validation_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
