"""Snapshots of the main screens at 120x40 and 80x24 (pytest-textual-snapshot; `--snapshot-update` after looking).

The recommendation uses the hand-made plan, so a change in the planner's rules
does not move these pictures; only a change in the screens does.
"""

from __future__ import annotations

from textual.widgets import Input

from advisor.tui.app import build_app

from .driver import answer_all, answer_step, handmade_plan

SIZE = (120, 40)


def frozen(app):
    """No blinking cursor, so the picture does not depend on when it is taken."""
    for field in app.query(Input):
        field.cursor_blink = False


def test_goal_step(snap_compare):
    async def run_before(pilot):
        frozen(pilot.app)

    assert snap_compare(build_app(planner=handmade_plan), terminal_size=SIZE, run_before=run_before)


def test_task_step_with_a_bad_value_light_theme(snap_compare):
    async def run_before(pilot):
        await answer_step(pilot, {"goal": "knowledge"})
        frozen(pilot.app)
        await pilot.press("ctrl+t")
        await pilot.click("#examples")
        await pilot.press("minus", "5")

    assert snap_compare(build_app(planner=handmade_plan), terminal_size=SIZE, run_before=run_before)


def test_recommendation(snap_compare):
    async def run_before(pilot):
        await answer_all(pilot, {"model": "llama-3.1-8b", "gpu": "rtx4090"})

    assert snap_compare(build_app(planner=handmade_plan), terminal_size=SIZE, run_before=run_before)


def test_hardware_step_at_80x24(snap_compare):
    """The smallest usual terminal: labels above the controls, nothing cut."""
    async def run_before(pilot):
        await answer_step(pilot, {})
        await answer_step(pilot, {})
        frozen(pilot.app)

    assert snap_compare(build_app(planner=handmade_plan), terminal_size=(80, 24), run_before=run_before)


def test_recommendation_at_80x24(snap_compare):
    async def run_before(pilot):
        await answer_all(pilot, {"model": "llama-3.1-8b", "gpu": "rtx4090"})

    assert snap_compare(build_app(planner=handmade_plan), terminal_size=(80, 24), run_before=run_before)


def test_two_stage_recommendation_at_80x24(snap_compare):
    """A domain corpus makes the plan two stages; both are listed under the summary."""
    from .test_tui_inputs import staged_plan

    async def run_before(pilot):
        await answer_all(pilot, {"goal": "both", "keep_general_ability": True, "examples": 2000,
                                 "corpus_tokens": 50_000_000, "language": "de", "num_nodes": 2})

    assert snap_compare(build_app(planner=staged_plan), terminal_size=(80, 24), run_before=run_before)
