"""`python -m advisor.demo --output-dir DIR` (what `make demo` runs): plan, execute and score the embedded default.

Plans Banking77 intent classification on the packaged MiniLM encoder (CPU,
offline) with the planner, executes the plan on
examples/data/banking77/train.csv with the local backend (the same code path
as `advisor execute`), then scores the saved model on test.csv, which neither
training nor checkpoint selection ever sees, and prints test accuracy,
macro-F1 and the wall time. `benchmarks/recipe_quality.py` reuses `run_plan`
and `score_classifier` to compare the plan with a fixed baseline.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from .errors import EXIT_INTERRUPTED, UserError
from .models import Plan, Profile

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data" / "banking77"
TRAIN = EXAMPLES / "train.csv"
TEST = EXAMPLES / "test.csv"
DEMO_PROFILE = Profile(goal="behavior", task="classification", model="all-minilm-l6-v2", gpu="cpu",
                       data=str(TRAIN))


def demo_plan(profile: Profile = DEMO_PROFILE) -> Plan:
    from .planner import plan_for

    plan = plan_for(profile)
    if plan.training is None:
        raise UserError(f"the planner recommends '{plan.recommendation.approach}' for the demo: nothing to train", 1)
    return plan


def run_plan(plan: Plan, data: Path, output_dir: Path, max_steps: Optional[int] = None) -> Any:
    """Execute `plan` on `data` into `output_dir` (replacing a previous demo run there): RunMetrics."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .backends import artifacts, local
    from .backends.prepared import prepare
    from .backends.models import ExecuteRequest

    overwrite = (output_dir / "run-manifest.json").is_file()
    request = ExecuteRequest(plan=plan, plan_path=str(output_dir / "plan.json"), data=str(data),
                             output_dir=str(output_dir), overwrite=overwrite, max_steps=max_steps)
    prepared = prepare(request)
    backup = artifacts.prepare_output_dir(output_dir, resume=False, overwrite=overwrite)
    return local.run(prepared, backup)


def score_classifier(model_dir: Path, test_file: Path, batch_size: int = 128) -> dict[str, float]:
    """Accuracy and macro-F1 of the saved model on a text,category CSV, loaded with plain transformers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .backends.metrics import score_classification

    with open(test_file, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    label2id = model.config.label2id
    unknown = sorted({row["category"] for row in rows} - set(label2id))
    if unknown:
        raise UserError(f"test labels the model never saw: {', '.join(unknown[:5])}")
    predictions = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            texts = [row["text"] for row in rows[start:start + batch_size]]
            batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
            predictions += model(**batch).logits.argmax(-1).tolist()
    return score_classification([label2id[row["category"]] for row in rows], predictions)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advisor.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/demo", help="where the model and its metrics go (replaced)")
    parser.add_argument("--max-steps", type=int, help="stop after N steps (a quick check, not the demo figure)")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir)
    started = time.monotonic()
    from .backends.local import RunInterrupted

    try:
        plan = demo_plan()
        print(f"plan: {plan.recommendation.summary}", file=sys.stderr)
        metrics = run_plan(plan, TRAIN, output_dir, args.max_steps)
        test = score_classifier(output_dir, TEST)
    except UserError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return error.exit_code
    except RunInterrupted as stop:
        print(f"interrupted: checkpoint saved at {stop.checkpoint}; continue with: {stop.command}", file=sys.stderr)
        return EXIT_INTERRUPTED
    wall = time.monotonic() - started
    validation = metrics.main.final_eval if metrics.main else {}
    result = {"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
              "validation_accuracy": validation.get("accuracy"), "train_wall_time_s": metrics.wall_time_s,
              "wall_time_s": wall, "method": metrics.method, "steps": metrics.main.steps if metrics.main else 0}
    from .backends import artifacts

    artifacts.write_json(output_dir / "demo.json", result)
    artifacts.record(output_dir, [output_dir / "demo.json"])  # the run's own file: a later demo may replace it
    print(f"Banking77 on the embedded MiniLM ({metrics.method}, {metrics.device}): "
          f"validation accuracy {result['validation_accuracy'] or 0:.4f}; held-out test.csv accuracy "
          f"{test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}; wall time {wall:.0f} s -> {output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
