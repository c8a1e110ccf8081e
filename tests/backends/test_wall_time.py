"""Wall time counts each second once across a resume, however many folds report in between."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from advisor.backends.callbacks import SaveOnInterrupt
from conftest import banking77_sample, make_plan, run_cli, save_plan


@pytest.mark.slow  # two k-fold runs: ~45 s on a shared CPU
def test_a_resumed_kfold_run_reports_the_time_it_ran(tmp_path, tiny_bert, capsys, monkeypatch):
    data = banking77_sample(tmp_path / "banking.csv", labels=3, per_label=4)
    plan = save_plan(make_plan(str(tiny_bert), task="classification", learning_rate=1e-3, eval_metric="accuracy",
                               data={"kfold": 3, "stratify": True, "seed": 7}), tmp_path / "plan.json")
    out = tmp_path / "run"
    args = ("execute", plan, "--data", data, "--output-dir", out, "--max-steps", 2, "--save-steps", 1)
    original = SaveOnInterrupt.on_step_end

    def interrupt_at_first_step(self, train_args, state, control, **kwargs):
        if state.global_step == 1 and not self.interrupted:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, train_args, state, control, **kwargs)

    monkeypatch.setattr(SaveOnInterrupt, "on_step_end", interrupt_at_first_step)
    code, _, stderr = run_cli(capsys, *args)
    assert code != 0 and "saving checkpoint-1" in stderr
    first = json.loads((out / "metrics.json").read_text())["wall_time_s"]
    monkeypatch.setattr(SaveOnInterrupt, "on_step_end", original)

    began = time.monotonic()
    code, _, stderr = run_cli(capsys, *args, "--resume")
    resume_took = time.monotonic() - began
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["folds"]) == 3
    assert first < metrics["wall_time_s"] <= first + resume_took
