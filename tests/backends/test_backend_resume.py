"""Ctrl-C saves a checkpoint and prints the resume command; --resume reaches what an uninterrupted run reaches.

The SIGINT is real: the test sends it to its own process at step N/2, the
way a terminal's Ctrl-C arrives, and the run's handler turns it into a save.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from advisor.backends.callbacks import SaveOnInterrupt

from conftest import alpaca_records, kill_the_save_at, make_plan, run_cli, save_plan, write_jsonl

STEPS = 20


@pytest.fixture
def interrupt_at(monkeypatch):
    """Send SIGINT to this process when the run reaches the given step."""
    original = SaveOnInterrupt.on_step_end

    def arm(step: int) -> None:
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step and not self.interrupted:
                os.kill(os.getpid(), signal.SIGINT)
            return original(self, args, state, control, **kwargs)

        monkeypatch.setattr(SaveOnInterrupt, "on_step_end", on_step_end)

    return arm


@pytest.fixture
def run_files(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(40))
    plan = save_plan(make_plan(str(tiny_llama), learning_rate=2e-3, warmup_ratio=0.1), tmp_path / "plan.json")
    return plan, data


def execute(capsys, plan, data, out, *extra):
    return run_cli(capsys, "execute", plan, "--data", data, "--output-dir", out, "--max-steps", STEPS,
                   "--save-steps", 5, *extra)


def losses(out) -> list[float]:
    metrics = json.loads((out / "metrics.json").read_text())
    return [entry["loss"] for entry in metrics["main"]["losses"]]


def test_interrupt_then_resume_matches_an_uninterrupted_run(tmp_path, run_files, interrupt_at, capsys):
    plan, data = run_files
    straight = tmp_path / "straight"
    assert execute(capsys, plan, data, straight)[0] == 0

    interrupted = tmp_path / "interrupted"
    interrupt_at(STEPS // 2)
    code, _, stderr = execute(capsys, plan, data, interrupted)
    assert code == 130
    assert (interrupted / "checkpoints" / f"checkpoint-{STEPS // 2}").is_dir()
    resume_line = next(line for line in stderr.splitlines() if line.startswith("resume with: "))
    assert resume_line.endswith(f"--output-dir {interrupted} --resume --max-steps {STEPS} --save-steps 5")
    assert json.loads((interrupted / "metrics.json").read_text())["status"] == "interrupted"

    code, _, stderr = execute(capsys, plan, data, interrupted, "--resume")
    assert code == 0, stderr
    resumed = json.loads((interrupted / "metrics.json").read_text())["main"]
    assert resumed["steps"] == STEPS
    assert len(losses(interrupted)) == STEPS
    assert losses(interrupted) == pytest.approx(losses(straight), rel=1e-4)


def test_resume_is_refused_when_the_data_or_the_plan_changed(tmp_path, run_files, interrupt_at, capsys):
    plan, data = run_files
    out = tmp_path / "run"
    interrupt_at(2)
    assert execute(capsys, plan, data, out)[0] == 130

    original = data.read_text()
    data.write_text(original + json.dumps({"instruction": "one more", "input": "", "output": "row"}) + "\n")
    code, _, stderr = execute(capsys, plan, data, out, "--resume")
    assert code == 2
    assert stderr.strip().splitlines()[-1].startswith("error: cannot resume: the data") and "changed" in stderr
    data.write_text(original)

    changed = json.loads(plan.read_text())
    changed["training"]["hyperparameters"]["learning_rate"] = 1e-3
    other_plan = tmp_path / "other-plan.json"
    other_plan.write_text(json.dumps(changed))
    code, _, stderr = execute(capsys, other_plan, data, out, "--resume")
    assert code == 2 and "cannot resume: the plan" in stderr


def test_resume_needs_a_run_to_resume(tmp_path, run_files, capsys):
    plan, data = run_files
    code, _, stderr = execute(capsys, plan, data, tmp_path / "nothing-here", "--resume")
    assert code == 2 and "cannot resume" in stderr


@pytest.fixture
def sigterm_at(request, monkeypatch):
    """Send SIGTERM (what `kill` and job schedulers send) to this process when the run reaches a step (default 4)."""
    step = getattr(request, "param", 4)
    original = SaveOnInterrupt.on_step_end

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == step and not self.interrupted:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(SaveOnInterrupt, "on_step_end", on_step_end)


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path, run_files, sigterm_at, capsys):
    plan, data = run_files
    out = tmp_path / "run"
    previous = signal.getsignal(signal.SIGTERM)
    code, _, stderr = execute(capsys, plan, data, out)
    assert code == 130
    assert "terminate: finishing step 4/20, then saving checkpoint-4 and stopping" in stderr
    assert (out / "checkpoints" / "checkpoint-4" / "trainer_state.json").is_file()
    assert any(line.startswith("resume with: ") for line in stderr.splitlines())
    assert signal.getsignal(signal.SIGTERM) is previous  # given back after the run


def test_a_save_killed_midway_leaves_no_checkpoint_and_resume_uses_the_previous_one(
    tmp_path, run_files, capsys, monkeypatch,
):
    """The save of checkpoint-10 dies after the weights, before the optimizer: only the staged copy is partial."""
    from advisor.backends.plan_trainer import PlanTrainer

    plan, data = run_files
    out = tmp_path / "run"
    kill_the_save_at(monkeypatch, PlanTrainer, 10)
    code, _, _ = execute(capsys, plan, data, out)
    assert code == 130
    checkpoints = out / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [".incomplete", "checkpoint-5"]
    assert (checkpoints / ".incomplete" / "checkpoint-10" / "model.safetensors").is_file()

    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (checkpoints / "checkpoint-7").mkdir()  # and an empty one, as a kill left it before checkpoints were staged
    code, _, stderr = execute(capsys, plan, data, out, "--resume")
    assert code == 0, stderr
    skipped = [line for line in stderr.splitlines() if line.startswith("warning: skipped checkpoint")]
    assert len(skipped) == 2
    assert "checkpoint-10': its save was interrupted" in skipped[0]
    assert "checkpoint-7': no trainer_state.json" in skipped[1]
    assert json.loads((out / "metrics.json").read_text())["main"]["steps"] == STEPS
    assert not (checkpoints / ".incomplete").exists()


def test_an_output_dir_inside_the_data_dir_is_not_part_of_the_data(tmp_path, tiny_llama, interrupt_at, capsys):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_jsonl(data_dir / "alpaca.jsonl", alpaca_records(40))
    plan = save_plan(make_plan(str(tiny_llama), learning_rate=2e-3), tmp_path / "plan.json")
    out = data_dir / "run"
    interrupt_at(5)
    assert execute(capsys, plan, data_dir, out)[0] == 130
    code, _, stderr = execute(capsys, plan, data_dir, out, "--resume")
    assert code == 0, stderr
    assert json.loads((out / "metrics.json").read_text())["status"] == "completed"


def test_newest_complete_skips_partial_checkpoints_one_line_each(tmp_path):
    from advisor.backends.checkpoints import newest_complete

    def checkpoint(step, state=None):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
        return folder

    assert newest_complete(tmp_path) == (None, [])
    complete = checkpoint(3, json.dumps({"global_step": 3}))
    checkpoint(6, json.dumps({"global_step": 5}))
    checkpoint(9, '{"global_step": 9')  # cut short
    checkpoint(12)
    (tmp_path / "checkpoint-15.tmp").mkdir()  # not a checkpoint name: ignored
    found, skipped = newest_complete(tmp_path)
    assert found == complete
    assert [line.split("': ")[1] for line in skipped] == [
        "no trainer_state.json (the save did not finish)", "trainer_state.json is damaged",
        "trainer_state.json is not at step 6",
    ]


@pytest.mark.parametrize("sigterm_at", [7], indirect=True)
def test_the_stop_keeps_the_checkpoint_it_names_when_an_earlier_one_is_best(tmp_path, run_files, sigterm_at, capsys):
    """checkpoint-5 is the best evaluated so far; the Trainer ends train() by deleting every other checkpoint
    when save_total_limit is 1, which took the stop's own checkpoint-7 with it."""
    plan, data = run_files
    out = tmp_path / "run"
    code, _, stderr = execute(capsys, plan, data, out)
    assert code == 130 and "saving checkpoint-7" in stderr
    assert (out / "checkpoints" / "checkpoint-7" / "trainer_state.json").is_file()
    code, _, stderr = execute(capsys, plan, data, out, "--resume")
    assert code == 0, stderr
