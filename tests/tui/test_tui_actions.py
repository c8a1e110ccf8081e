"""What the recommendation screen does: save the plan, copy the command, execute and stop a run.

These use a hand-made plan and a stand-in executor (fake_executor.py): they
test the screens, not the planner or the trainer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
from textual.widgets import Input, ProgressBar, Sparkline, Static

from advisor.models import Plan
from advisor.tui.app import build_app
from advisor.tui.screens.recommendation import RecommendationScreen
from advisor.tui.screens.run import RunScreen

from .driver import FAKE_EXECUTOR, answer_all, execute, handmade_plan, start_run

pytestmark = pytest.mark.anyio


def wizard(*executor_options: str):
    return build_app(planner=handmade_plan, executor=[*FAKE_EXECUTOR, *executor_options])


async def test_copy_and_save_where_save_refuses_to_overwrite_unless_confirmed(tmp_path):
    target = tmp_path / "plan.json"
    app = wizard()
    async with app.run_test(size=(120, 40)) as pilot:
        await answer_all(pilot, {"goal": "knowledge", "dynamic_knowledge": True, "examples": 300, "gpu": "rtx4090"})
        plan = app.screen.plan
        await pilot.press("c")
        expected = "advisor plan --goal knowledge --examples 300 --dynamic-knowledge --gpu rtx4090"
        assert app.clipboard == expected, "c copies the equivalent command"
        assert str(app.screen.query_one("#command", Static).content) == f"$ {expected}"

        async def save(*confirm: str) -> None:
            await pilot.press("s")
            await pilot.pause()
            app.screen.query_one(Input).value = str(target)
            await pilot.press("enter", *confirm)
            await app.workers.wait_for_complete()
            await pilot.pause()

        await save()
        assert Plan.model_validate_json(target.read_text()) == plan
        assert target.read_text() == plan.model_dump_json(indent=2) + "\n"
        target.write_text("mine")
        await save("n")
        assert target.read_text() == "mine"
        await save("y")
        assert Plan.model_validate_json(target.read_text()) == plan
        assert isinstance(app.screen, RecommendationScreen)


async def test_execute_runs_the_plan_and_follows_its_progress(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "x", "label": "a"}\n')
    (tmp_path / "taken").mkdir()
    output_dir = tmp_path / "run"
    app = wizard("--steps", "4")
    async with app.run_test(size=(120, 40)) as pilot:
        await answer_all(pilot, {})
        await execute(pilot, data, tmp_path / "taken")
        assert isinstance(app.screen, RecommendationScreen), "an existing output directory is refused"
        assert not (tmp_path / "taken.plan.json").exists()
        await execute(pilot, data, output_dir)
        screen = app.screen
        assert isinstance(screen, RunScreen)
        plan_file = tmp_path / "run.plan.json"
        assert Plan.model_validate_json(plan_file.read_text()) == handmade_plan(app.profile)
        lines = screen.output
        assert lines[0] == f"training qlora on {data}" and lines[-1] == "done"
        bar = screen.query_one(ProgressBar)
        assert (bar.total, bar.progress) == (4, 4)
        assert list(screen.query_one(Sparkline).data) == [2.0, 1.0, 2 / 3, 0.5]
        status = str(screen.query_one("#run-status", Static).content)
        assert status.startswith("finished")
        assert "accuracy 0.88 ± 0.02 (k-fold) · validation loss 0.61 · validation accuracy 0.9" in status
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RecommendationScreen)


async def start_a_long_run(app, pilot, tmp_path: Path) -> RunScreen:
    """From the first screen to a run under way (its first step drawn), writing to tmp_path/run."""
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "x", "label": "a"}\n')
    await answer_all(pilot, {})
    await start_run(pilot, data, tmp_path / "run")
    screen = app.screen
    assert isinstance(screen, RunScreen)
    while not screen.query_one(Sparkline).data:
        await pilot.pause(0.1)
    return screen


async def test_ctrl_c_stops_the_run_with_a_checkpoint(tmp_path):
    app = wizard("--steps", "100000", "--delay", "0.01")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_a_long_run(app, pilot, tmp_path)
        await pilot.press("ctrl+c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.returncode == 130
        resume = next(line for line in screen.output if "--resume" in line)
        assert str(screen.query_one("#run-status", Static).content).startswith(f"stopped (exit 130) · {resume}")
        assert json.loads((tmp_path / "run" / "progress.jsonl").read_text().splitlines()[0])["step"] == 1


async def test_a_closed_terminal_stops_the_run_with_a_checkpoint(tmp_path):
    """SIGHUP to the wizard reaches the executor (its own session would not get it) and the wizard exits."""
    app = wizard("--steps", "100000", "--delay", "0.01")
    async with app.run_test(size=(120, 40)) as pilot:
        process = (await start_a_long_run(app, pilot, tmp_path)).process
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(process.wait(), 30)
        assert app.return_code is not None  # the wizard is leaving
    assert (tmp_path / "run" / "stopped").read_text() == "SIGINT"  # the executor's own stop: checkpoint, resume line
