"""Early stopping on a run whose validation loss rises: it stops, and the saved model is the best checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from advisor.backends import artifacts, local
from advisor.backends.models import ExecuteRequest
from advisor.backends.prepared import prepare
from advisor.data import SplitPlan

from conftest import make_plan, write_jsonl


def test_rising_validation_loss_stops_early_and_restores_the_best_checkpoint(tmp_path, tiny_llama):
    # Train on one colour only; validate on others: the more it learns, the worse validation gets.
    train = [{"text": "red " * 12} for _ in range(16)]
    validation = [{"text": "blue green yellow purple white black " * 2} for _ in range(4)]
    data = write_jsonl(tmp_path / "text.jsonl", train + validation)
    plan = make_plan(str(tiny_llama), task="generation", learning_rate=5e-3, batch_size=4, epochs=10,
                     early_stopping_patience=2, eval_metric="loss")
    out = tmp_path / "run"
    request = ExecuteRequest(plan=plan, plan_path="plan.json", data=str(data), output_dir=str(out), save_steps=1)
    prepared = prepare(request)
    prepared.split = SplitPlan(strategy="by hand", seed=0, splits={"train": list(range(16)),
                                                                   "validation": list(range(16, 20))})
    artifacts.prepare_output_dir(out, resume=False, overwrite=False)
    metrics = local.run(prepared)

    result = metrics.main
    validation_losses = [e.metrics["loss"] for e in result.evaluations]
    assert validation_losses == sorted(validation_losses)  # it rose at every evaluation
    assert result.early_stopped and result.steps == 3 < 40  # best at step 1, then 2 evaluations without improvement
    assert result.best_step == 1 and result.final_eval["loss"] == pytest.approx(validation_losses[0])

    # The directory holds the step-1 weights, not the last ones.
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(out)
    batch = prepared.tokenizer([record["text"] for record in validation], return_tensors="pt")
    with torch.no_grad():
        loss = saved(**batch, labels=batch["input_ids"]).loss.item()
    assert loss == pytest.approx(validation_losses[0], rel=1e-3)
    assert json.loads((out / "metrics.json").read_text())["main"]["early_stopped"] is True
