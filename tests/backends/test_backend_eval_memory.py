"""Evaluation keeps no batch x seq x vocab logits: what it holds does not grow with the evaluation set.

The Trainer accumulates what it keeps across evaluation batches in
`EvalLoopContainer`s (transformers #12878: full logits, until OOM). The test
counts the bytes added to those containers and to the run's scorer while a
tiny causal LM evaluates 8 and then 64 examples, and compares with a plain
Trainer given a logits-level compute_metrics (the pitfall).
"""

from __future__ import annotations

import numpy as np
import pytest
import transformers.trainer as trainer_module

from advisor.backends import local
from advisor.backends.models import ExecuteRequest
from advisor.backends.prepared import prepare

from conftest import alpaca_records, make_plan, write_jsonl


@pytest.fixture
def kept_bytes(monkeypatch):
    """Bytes the Trainer's evaluation containers take in, other than the per-example loss."""
    counted = {"bytes": 0}
    original = trainer_module.EvalLoopContainer.add

    def add(self, tensors):
        if tensors is not None and getattr(tensors, "ndim", 1) > 1:  # losses arrive as one value per example
            counted["bytes"] += tensors.numel() * tensors.element_size()
        return original(self, tensors)

    monkeypatch.setattr(trainer_module.EvalLoopContainer, "add", add)
    return counted


def evaluate_sizes(trainer, features, sizes, counted) -> list[int]:
    from datasets import Dataset

    held = []
    for size in sizes:
        counted["bytes"] = 0
        trainer.evaluate(Dataset.from_list(features[:size]))
        scorer = trainer.compute_metrics
        held.append(counted["bytes"] + sum(np.asarray(v).nbytes for v in vars(scorer).values()
                                           if isinstance(v, (list, np.ndarray, int))))
    return held


def test_evaluation_memory_stays_flat_as_the_evaluation_set_grows(tmp_path, tiny_llama, kept_bytes):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(64, seed=1))
    plan = make_plan(str(tiny_llama), batch_size=8, seq_len=64)
    request = ExecuteRequest(plan=plan, plan_path="plan.json", data=str(data), output_dir=str(tmp_path / "run"))
    prepared = prepare(request)
    features = prepared.encoded.select(range(64))
    trainer, _ = local.make_trainer(prepared, train_features=features[:8], eval_features=features[:8])

    ours = evaluate_sizes(trainer, features, (8, 64), kept_bytes)
    assert ours[1] == ours[0]

    # The pitfall, for contrast: the same Trainer keeping logits for a metric grows with the set.
    trainer.args.batch_eval_metrics = False
    trainer.preprocess_logits_for_metrics = None
    trainer.compute_metrics = lambda prediction: {"kept": float(prediction.predictions.size)}
    plain = evaluate_sizes(trainer, features, (8, 64), kept_bytes)
    vocab = trainer.model.config.vocab_size
    assert plain[1] - plain[0] >= 56 * 10 * vocab * 4  # 56 more examples x >= 10 tokens x vocab x fp32
