"""An out-of-memory error at run time downshifts (checkpointing, then half micro-batch x double accumulation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advisor.backends.downshift import next_shape
from advisor.backends.models import TrainShape
from advisor.backends.plan_trainer import PlanTrainer

from conftest import alpaca_records, make_plan, run_cli, save_plan, write_jsonl


@pytest.fixture
def inject_oom(monkeypatch):
    """Make the first `count` training steps of the run (or of the preflight probe) raise torch.OutOfMemoryError."""
    original = PlanTrainer.training_step

    def arm(count: int, in_probe: bool = False) -> list[int]:
        raised = [0]

        def training_step(self, *args, **kwargs):
            # The run's Trainer checkpoints into DIR/checkpoints; the probe's into a scratch directory.
            is_probe = Path(self.args.output_dir).name != "checkpoints"
            if raised[0] < count and is_probe == in_probe:
                raised[0] += 1
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by a test)")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(PlanTrainer, "training_step", training_step)
        return raised

    return arm


def test_the_downshift_order_keeps_the_effective_batch():
    shape = TrainShape(batch_size=8, gradient_accumulation_steps=2, gradient_checkpointing=False)
    first = next_shape(shape)
    second = next_shape(first)
    assert first == TrainShape(batch_size=8, gradient_accumulation_steps=2, gradient_checkpointing=True)
    assert second == TrainShape(batch_size=4, gradient_accumulation_steps=4, gradient_checkpointing=True)
    assert next_shape(TrainShape(batch_size=1, gradient_accumulation_steps=16, gradient_checkpointing=True)) is None


def test_two_injected_ooms_downshift_twice_and_the_run_finishes(tmp_path, tiny_llama, inject_oom, capsys):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(24))
    plan = save_plan(make_plan(str(tiny_llama), batch_size=4), tmp_path / "plan.json")
    out = tmp_path / "run"
    raised = inject_oom(2)
    code, stdout, stderr = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", out, "--max-steps", 3)
    assert code == 0, stderr
    assert raised[0] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    shifts = metrics["downshifts"]
    assert [s["after"] for s in shifts] == [
        {"batch_size": 4, "gradient_accumulation_steps": 1, "gradient_checkpointing": True},
        {"batch_size": 2, "gradient_accumulation_steps": 2, "gradient_checkpointing": True},
    ]
    assert "out of memory" in shifts[0]["error"].lower()
    assert metrics["main"]["shape"] == shifts[-1]["after"] and metrics["main"]["steps"] == 3
    assert "retrying with gradient checkpointing on" in stderr
    assert "out of memory at step 0" in stdout


def test_out_of_memory_at_the_smallest_shape_fails_the_run_and_says_so(tmp_path, tiny_llama, inject_oom, capsys):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(16))
    plan = save_plan(make_plan(str(tiny_llama), batch_size=2), tmp_path / "plan.json")
    out = tmp_path / "run"
    inject_oom(100)
    code, _, stderr = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", out, "--max-steps", 2)
    assert code == 1
    assert stderr.strip().splitlines()[-1].startswith("error: out of memory at step 0 of main even at micro-batch 1")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "failed" and len(metrics["downshifts"]) == 2


def test_an_oom_in_the_preflight_probe_makes_the_run_start_downshifted(tmp_path, tiny_llama, inject_oom, capsys):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(24))
    plan = save_plan(make_plan(str(tiny_llama), batch_size=4), tmp_path / "plan.json")
    out = tmp_path / "run"
    inject_oom(1, in_probe=True)
    code, _, stderr = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", out, "--max-steps", 2)
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [shift["run"] for shift in metrics["downshifts"]] == ["preflight"]
    assert metrics["main"]["shape"]["gradient_checkpointing"] is True
    assert "retrying" not in stderr  # the run itself never ran out of memory
