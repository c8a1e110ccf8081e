"""The whole wizard, driven with Pilot for three profiles: the plan shown is the core planner's.

Each profile goes through the four steps; the recommendation screen must show
`advisor.planner.plan_for` of the same answers, and the command line it shows
must make `advisor plan --json` print that same plan.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from textual.widgets import Input, Static

from advisor.data import profile_hints, validate_file
from advisor.models import validate_profile
from advisor.planner import plan_for
from advisor.tui.app import build_app
from advisor.tui.screens.recommendation import RecommendationScreen, headline
from advisor.tui.screens.step import StepScreen
from advisor.tui.widgets.alternatives import AlternativesTable
from advisor.tui.widgets.memory_bars import MemoryBars
from advisor.tui.widgets.rationale import RationaleList

from .driver import answer_all, answer_step

pytestmark = pytest.mark.anyio

PROFILES = {
    "rag": {"goal": "knowledge", "dynamic_knowledge": True},
    "qlora-24gb": {"goal": "behavior", "task": "instruction", "examples": 5000,
                   "model": "llama-3.1-8b", "gpu": "rtx4090"},
    "cpu-embedded": {"goal": "behavior", "task": "classification", "examples": 2000,
                     "model": "all-minilm-l6-v2", "gpu": "cpu"},
}


def cli_plan(command: str) -> dict:
    """What `advisor plan --json` prints for the command the wizard shows."""
    words = shlex.split(command)
    assert words[:2] == ["advisor", "plan"]
    done = subprocess.run([sys.executable, "-m", "advisor", *words[1:], "--json"], capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", PROFILES)
async def test_the_recommendation_shown_is_the_planners(name):
    answers = PROFILES[name]
    app = build_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await answer_all(pilot, answers)
        screen = app.screen
        assert isinstance(screen, RecommendationScreen)
        expected = plan_for(validate_profile(answers))
        assert screen.plan == expected
        assert str(screen.query_one("#headline", Static).content) == headline(expected)
        assert str(screen.query_one("#summary", Static).content) == expected.recommendation.summary
        assert screen.query_one(RationaleList).entries == expected.rationale
        table = screen.query_one(AlternativesTable)
        assert [str(key.value) for key in table.rows] == [a.method or a.approach for a in expected.alternatives]
        bars = screen.query_one(MemoryBars)
        assert bars.memory == (expected.estimate.memory if expected.estimate else None)
        command = str(screen.query_one("#command", Static).content).removeprefix("$ ")
        assert cli_plan(command) == expected.model_dump(mode="json")
    if name == "rag":
        rec = expected.recommendation
        assert "rag" in (rec.approach, *rec.complements)


async def test_picking_an_alternative_plans_again_with_that_method():
    answers = PROFILES["qlora-24gb"]
    app = build_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await answer_all(pilot, answers)
        screen = app.screen
        first = screen.plan
        picked = "qlora"
        table = screen.query_one(AlternativesTable)
        table.focus()
        await pilot.press(*["down"] * [a.method for a in first.alternatives].index(picked), "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.plan.recommendation.method == picked
        assert screen.profile.method == picked
        assert screen.plan == plan_for(validate_profile(answers).model_copy(update={"method": picked}))
        assert f"--method {picked}" in str(screen.query_one("#command", Static).content)
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.plan == first


async def test_a_data_file_fills_task_examples_and_quality(tmp_path):
    data = tmp_path / "reviews.jsonl"
    rows = [{"text": f"review number {n} was {'great' if n % 2 else 'awful'}", "label": "pos" if n % 2 else "neg"}
            for n in range(60)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    hints = profile_hints(validate_file(data))
    app = build_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await answer_step(pilot, {})
        field = app.screen.query_one("#data", Input)
        field.value = str(data)
        field.focus()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert screen.NUMBER == 2, "Enter in the data field reads the file; it does not move on"
        assert screen.query_one("#task").value == hints["task"] == "classification"
        assert screen.query_one("#examples", Input).value == str(hints["examples"])
        assert screen.query_one("#quality").value == hints["quality"]
        assert "60 valid of 60 records" in str(screen.query_one(".data-report", Static).content)
        await answer_all(pilot, {})
        assert app.screen.plan == plan_for(validate_profile({"data": str(data)}))


async def test_a_bad_value_is_shown_under_its_field_and_next_is_refused():
    app = build_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await answer_step(pilot, {})
        await pilot.click("#examples")
        await pilot.press("minus", "5")
        note = app.screen.query_one("#examples-field .question-note", Static)
        assert "examples" in str(note.content) and "greater than or equal to 0" in str(note.content)
        assert note.has_class("-error")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, StepScreen) and app.screen.NUMBER == 2
        assert "error: invalid value '-5' for 'examples'" in str(app.screen.query_one(".step-error", Static).content)
        await pilot.press("backspace", "backspace", "2", "0", "0")
        assert not note.has_class("-error")


async def test_keys_move_back_and_forth_keep_the_answers_and_open_help_and_theme():
    app = build_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("up", "enter")  # the goal choice has focus, on the default; Enter picks and moves on
        await pilot.pause()
        assert app.profile.goal == "knowledge" and app.screen.NUMBER == 2
        await pilot.click("#examples")
        await pilot.press("3", "0", "0", "enter")  # Enter in a field is Next
        await pilot.pause()
        assert app.screen.NUMBER == 3 and app.profile.examples == 300
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.NUMBER == 2
        assert app.screen.query_one("#examples", Input).value == "300"
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert app.screen.NUMBER == 1
        theme = app.theme
        await pilot.press("ctrl+t")
        assert app.theme != theme
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, StepScreen) and app.screen.NUMBER == 1
