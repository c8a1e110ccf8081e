"""Does the plan's recipe beat a hand-written default? Banking77 on the embedded MiniLM, CPU, scored on test.csv.

Runs, one after the other through the same local backend (`advisor.demo.run_plan`):

- the plan: `advisor.planner.make_plan` on the demo profile (what `make demo` trains);
- the baseline: the hand-written default of issue 11, written out below: full
  fine-tuning at 5e-5 for every weight, 3 epochs, batch 32, cosine, 10% warmup,
  no validation split, no early stopping, all of train.csv.

Each model is scored on examples/data/banking77/test.csv, which neither
uses for training or checkpoint selection. Prints accuracy, macro-F1 and wall
time for both and writes benchmarks/results/recipe_quality.md and .json.

    .venv/bin/python benchmarks/recipe_quality.py              # the benchmark (~30-40 min on 2 cores)
    .venv/bin/python benchmarks/recipe_quality.py --limit 400  # a quick check that it works, not a figure
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

from advisor.demo import DEMO_PROFILE, TEST, TRAIN, demo_plan, run_plan, score_classifier
from advisor.models import DataHandling, Plan, Recommendation, Training, TrainingHyperparameters

RESULTS = Path(__file__).resolve().parent / "results"

BASELINE_HYPERPARAMETERS = TrainingHyperparameters(
    learning_rate=5e-5, param_groups=[], epochs=3, batch_size=32, gradient_accumulation_steps=1, seq_len=128,
    warmup_ratio=0.1, scheduler="cosine", weight_decay=0.0, max_grad_norm=1.0, optimizer="adamw",
    early_stopping_patience=None, eval_metric="loss",
)


def baseline_plan() -> Plan:
    return Plan(
        profile=DEMO_PROFILE,
        recommendation=Recommendation(approach="full_finetune", method="full",
                                      summary="hand-written default: full fine-tuning at 5e-5, 3 epochs"),
        training=Training(method="full", precision="fp32", hyperparameters=BASELINE_HYPERPARAMETERS,
                          data=DataHandling(validation_ratio=0.0, stratify=False, seed=42)),
    )


def subset(source: Path, target: Path, limit: int, seed: int = 0) -> Path:
    """About `limit` rows of a text,category CSV, the same number per label (so a split can stratify)."""
    with open(source, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    random.Random(seed).shuffle(rows)
    labels = sorted({row["category"] for row in rows})
    per_label = max(2, limit // len(labels))
    chosen = [row for label in labels for row in [r for r in rows if r["category"] == label][:per_label]]
    with open(target, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(chosen)
    return target


def settings(plan: Plan) -> dict:
    hp = plan.training.hyperparameters
    rates = {group.name: group.learning_rate for group in hp.param_groups} or {"all": hp.learning_rate}
    return {"method": plan.training.method, "learning_rates": rates, "epochs": hp.epochs, "batch_size": hp.batch_size,
            "seq_len": hp.seq_len, "scheduler": hp.scheduler, "warmup_ratio": hp.warmup_ratio,
            "weight_decay": hp.weight_decay, "validation_ratio": plan.training.data.validation_ratio,
            "early_stopping_patience": hp.early_stopping_patience, "eval_metric": hp.eval_metric}


def measure(name: str, plan: Plan, train: Path, test: Path, work: Path) -> dict:
    print(f"--- {name}: {json.dumps(settings(plan))}", file=sys.stderr)
    started = time.monotonic()
    metrics = run_plan(plan, train, work / name)
    trained = time.monotonic() - started
    scores = score_classifier(work / name, test)
    return {"name": name, "settings": settings(plan), "test_accuracy": scores["accuracy"],
            "test_macro_f1": scores["macro_f1"], "train_wall_time_s": round(trained, 1),
            "steps": metrics.main.steps, "early_stopped": metrics.main.early_stopped,
            "kept_step": metrics.main.best_step}


def report(results: list[dict], limit: int | None) -> str:
    lines = ["# Recipe quality: the plan vs a hand-written default", "",
             "Banking77 intent classification (77 labels) on the embedded all-MiniLM-L6-v2, CPU "
             f"({platform.machine()}, {platform.python_version()}), trained on train.csv"
             + (f" (a {limit}-row subset: a smoke run, not the benchmark)" if limit else "")
             + ", scored on the held-out test.csv (never used for training or selection).", "",
             "| recipe | test accuracy | test macro-F1 | train wall time | steps |",
             "|---|---|---|---|---|"]
    for result in results:
        lines.append(f"| {result['name']} | {result['test_accuracy']:.4f} | {result['test_macro_f1']:.4f} | "
                     f"{result['train_wall_time_s']:.0f} s | {result['steps']}"
                     + (f" (stopped early, kept {result['kept_step']})" if result["early_stopped"] else "") + " |")
    lines += ["", "Settings:", ""]
    lines += [f"- {result['name']}: `{json.dumps(result['settings'])}`" for result in results]
    command = ".venv/bin/python benchmarks/recipe_quality.py" + (f" --limit {limit}" if limit else "")
    lines += ["", f"Reproduce: `{command}`"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="train and score on this many rows of each file (a smoke run)")
    parser.add_argument("--work-dir", help="where the two runs go (default: a temporary directory)")
    parser.add_argument("--output", default=str(RESULTS / "recipe_quality"), help="results path without extension")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="recipe-quality-") as scratch:
        work = Path(args.work_dir or scratch)
        work.mkdir(parents=True, exist_ok=True)
        train, test = TRAIN, TEST
        if args.limit:
            train = subset(TRAIN, work / "train.csv", args.limit)
            test = subset(TEST, work / "test.csv", args.limit)
        # The plan is made for the data it trains on (the subset with --limit).
        plan = demo_plan(DEMO_PROFILE.model_copy(update={"data": str(train)}))
        results = [measure("plan", plan, train, test, work), measure("baseline", baseline_plan(), train, test, work)]
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps({"limit": args.limit, "results": results}, indent=2) + "\n")
    output.with_suffix(".md").write_text(report(results, args.limit))
    for result in results:
        print(f"{result['name']:>8}: test accuracy {result['test_accuracy']:.4f}, macro-F1 "
              f"{result['test_macro_f1']:.4f}, {result['train_wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
