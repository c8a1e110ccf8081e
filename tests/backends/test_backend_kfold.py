"""k-fold plans: one model per stratified fold with its metrics, mean/std, then the final model on all the data."""

from __future__ import annotations

import json

import pytest

from conftest import banking77_sample, make_plan, run_cli, save_plan


def test_kfold_reports_each_fold_then_trains_the_final_model(tmp_path, tiny_bert, capsys):
    data = banking77_sample(tmp_path / "banking.csv", labels=3, per_label=6)
    plan = make_plan(str(tiny_bert), task="classification", learning_rate=1e-3, eval_metric="accuracy",
                     data={"kfold": 3, "stratify": True, "seed": 7})
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(capsys, "execute", save_plan(plan, tmp_path / "plan.json"), "--data", data,
                                   "--output-dir", out, "--max-steps", 2)
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    folds = metrics["folds"]
    assert [fold["run"] for fold in folds] == ["fold-0", "fold-1", "fold-2"]
    assert all(fold["validation_examples"] == 6 and fold["train_examples"] == 12 for fold in folds)
    assert all({"accuracy", "macro_f1", "loss"} <= set(fold["final_eval"]) for fold in folds)
    summary = metrics["kfold_summary"]["accuracy"]
    values = [fold["final_eval"]["accuracy"] for fold in folds]
    assert summary["values"] == values and summary["mean"] == pytest.approx(sum(values) / 3)
    assert metrics["main"]["run"] == "final" and metrics["main"]["train_examples"] == 18
    assert metrics["main"]["validation_examples"] == 0
    assert (out / "model.safetensors").is_file()
    assert not (out / "folds").exists() or not any((out / "folds").rglob("checkpoint-*"))
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert [fold["validation"]["labels"] for fold in manifest["folds"]] == [{n: 2 for n in metrics["label_names"]}] * 3
    assert "3-fold validation accuracy" in stdout
