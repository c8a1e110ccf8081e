"""`kill -9` at random moments, ten times: every `--resume` continues, and the run completes with a model that loads.

A real `advisor execute` subprocess on the tiny Llama, checkpointing (and
evaluating) every step. Each run is killed at one of three kinds of moment,
drawn from a seeded generator so a failure replays:

- while it starts (imports, loading, claiming the folder): a random delay;
- in the middle of a checkpoint save: after 1-3 steps of its own, as soon
  as the next save is under way in checkpoints/.incomplete, after a random
  few milliseconds;
- anywhere in training: after 1-3 steps of its own, then a random delay.

Every run but the startup kills must log a step of its own first: its resume worked.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import alpaca_records, make_plan, save_plan, write_jsonl

KILLS = 10
STEPS = 40
#: The longest a run may take to get to a step (imports and model loading on a busy CPU).
TIMEOUT_S = 300


def trained_steps(out) -> int:
    """Steps logged in progress.jsonl, by every run so far (resumed runs log the steps they redo again)."""
    progress = out / "progress.jsonl"
    if not progress.is_file():
        return 0
    steps = 0
    for line in progress.read_text().splitlines():
        try:
            steps += "loss" in json.loads(line)
        except ValueError:  # a line a kill cut short (and the next run's line after it)
            continue
    return steps


def wait_for(condition, process) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_to_completion(tmp_path, tiny_llama):
    rng = random.Random(20261202)
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(40))
    plan = save_plan(make_plan(str(tiny_llama), learning_rate=2e-3), tmp_path / "plan.json")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "advisor", "execute", str(plan), "--data", str(data), "--output-dir", str(out),
               "--max-steps", str(STEPS), "--save-steps", "1", "--no-probe"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

    def start(run: int):
        resume = ["--resume"] if (out / "run-manifest.json").is_file() else []
        log = open(tmp_path / f"stderr-{run}.log", "w")
        return subprocess.Popen([*command, *resume], stdout=subprocess.DEVNULL, stderr=log, env=env), log

    staging = out / "checkpoints" / ".incomplete"
    for kill in range(KILLS):
        before = trained_steps(out)
        process, log = start(kill)
        moment = rng.choice(["start", "save", "save", "training", "training"])
        if moment == "start":
            time.sleep(rng.uniform(0.0, 4.0))
        else:
            steps = rng.randint(1, 3)
            wait_for(lambda: trained_steps(out) >= before + steps, process)
            assert trained_steps(out) >= before + steps or process.poll() is not None, f"run {kill} logged no step"
            if moment == "save":
                wait_for(lambda: any(staging.glob("checkpoint-*")), process)
                time.sleep(rng.uniform(0.0, 0.05))
            else:
                time.sleep(rng.uniform(0.0, 0.5))
        code = process.poll()
        log.close()
        stderr = (tmp_path / f"stderr-{kill}.log").read_text()
        assert code is None, f"run {kill} ended by itself with {code} before its kill:\n{stderr}"
        assert "Traceback" not in stderr, stderr
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    process, log = start(KILLS)
    code = process.wait(timeout=900)
    log.close()
    stderr = (tmp_path / f"stderr-{KILLS}.log").read_text()
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["main"]["steps"] == STEPS

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 2
