"""The profile inputs of issue 17 in the wizard, at 80x24 and 120x40, typed as a person would:
both goals, keep general ability, continual updates (step 1); chat/code/preference, language and a
domain corpus (step 2); machines next to devices (step 3); a two-stage plan's stages on the recommendation.
"""

from __future__ import annotations

from typing import get_args

import pytest
from textual.widgets import Select, Static

from advisor.models import PlanStage, Task, Training, TrainingHyperparameters
from advisor.tui.app import build_app

from .driver import answer_all, answer_step, handmade_plan

pytestmark = pytest.mark.anyio

SIZES = [(80, 24), (120, 40)]


def on_screen(app, selector: str) -> bool:
    """The widget lies wholly inside the terminal and nothing on screen is cut with "…"."""
    region = app.screen.query_one(selector).region
    return region.height > 0 and region.bottom <= app.size.height and "…" not in app.export_screenshot()


@pytest.mark.parametrize("size", SIZES)
async def test_step_one_takes_both_goals_and_the_two_new_statements(size):
    app = build_app(planner=handmade_plan)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert on_screen(app, "#continual_updates"), "the last statement fits without scrolling"
        await pilot.press("down", "space")  # from Behaviour (the default) down to Both
        await pilot.press("tab", "tab", "tab", "space", "tab", "space")  # the 3rd and 4th statements
        await pilot.press("enter")  # Enter on a statement moves on
        await pilot.pause()
        assert app.screen.NUMBER == 2
        profile = app.profile
        assert profile.all_goals() == ["knowledge", "behavior"]
        assert profile.keep_general_ability and profile.continual_updates
        assert not profile.dynamic_knowledge and not profile.one_off
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.query_one("#goal-field").value == "both", "going back shows the answer given"


async def test_enter_on_both_picks_it_and_moves_on():
    app = build_app(planner=handmade_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.screen.NUMBER == 2 and app.profile.all_goals() == ["knowledge", "behavior"]


@pytest.mark.parametrize("size", SIZES)
async def test_step_two_takes_the_new_task_families_the_language_and_a_corpus(size):
    app = build_app(planner=handmade_plan)
    async with app.run_test(size=size) as pilot:
        await answer_step(pilot, {})
        task = app.screen.query_one("#task", Select)
        assert {"chat", "code", "preference"} <= {value for _, value in task._options}
        task.value = "code"
        app.screen.query_one("#language").focus()
        await pilot.press("d", "e", "tab", *"50000000")
        await pilot.pause()
        assert on_screen(app, "#corpus_tokens-field"), "the focused question scrolls into view whole"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.NUMBER == 3
        profile = app.profile
        assert (profile.task, profile.language, profile.corpus_tokens) == ("code", "de", 50_000_000)


@pytest.mark.parametrize("task", ["chat", "preference"])
async def test_every_task_family_reaches_the_profile(task):
    assert task in get_args(Task)
    app = build_app(planner=handmade_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        await answer_step(pilot, {})
        await answer_step(pilot, {"task": task})
        assert app.profile.task == task


async def test_a_language_that_is_no_code_is_refused_in_place():
    app = build_app(planner=handmade_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        await answer_step(pilot, {})
        await answer_step(pilot, {"language": "klingon"})
        assert app.screen.NUMBER == 2
        note = app.screen.query_one("#language-field .question-note", Static)
        assert "ISO 639" in str(note.content) and note.has_class("-error")


@pytest.mark.parametrize("size", SIZES)
async def test_step_three_takes_machines_next_to_devices(size):
    app = build_app(planner=handmade_plan)
    async with app.run_test(size=size) as pilot:
        await answer_step(pilot, {})
        await answer_step(pilot, {})
        app.screen.query_one("#num_gpus").focus()
        await pilot.press("8", "tab", "2")
        await pilot.pause()
        assert app.focused.id == "num_nodes", "Machines comes right after How many"
        assert on_screen(app, "#num_nodes-field")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.NUMBER == 4 and (app.profile.num_gpus, app.profile.num_nodes) == (8, 2)


def staged_plan(profile):
    plan = handmade_plan(profile)
    training = Training(method="lora", hyperparameters=TrainingHyperparameters(learning_rate=1e-4))
    stages = [
        PlanStage(name="continued-pretraining", purpose="next-token training on the 50,000,000-token corpus",
                  method="lora", examples=24_414, estimate=plan.estimate, training=training),
        PlanStage(name="task-tuning", purpose="instruction tuning on the 2,000 examples", method="lora",
                  examples=2000, estimate=plan.estimate, training=training),
    ]
    return plan.model_copy(update={"stages": stages}) if profile.corpus_tokens else plan


@pytest.mark.parametrize("size", SIZES)
async def test_the_recommendation_lists_the_stages_of_a_two_stage_plan(size):
    app = build_app(planner=staged_plan)
    async with app.run_test(size=size) as pilot:
        await answer_all(pilot, {"examples": 2000, "corpus_tokens": 50_000_000})
        stages = app.screen.query_one("#stages", Static)
        text = str(stages.content)
        assert text.startswith("Stage 1, continued-pretraining: next-token training on the 50,000,000-token corpus")
        assert "\nStage 2, task-tuning: " in text and stages.display
        assert on_screen(app, "#stages") and "--corpus-tokens 50000000" in str(app.screen.query_one("#command").content)


async def test_a_one_stage_plan_shows_no_stages():
    app = build_app(planner=staged_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        await answer_all(pilot, {})
        assert not app.screen.query_one("#stages").display
