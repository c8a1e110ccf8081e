"""Each step at 80x24 and 120x40: the first question has focus, Enter moves on, nothing is cut with "…".

Also the Execute dialog's focus, path completion, a local model folder, and a
failed run explained in place (the error line, the exit code, what to do).
"""

from __future__ import annotations

import pytest
from textual.widgets import Input, RadioSet, Select, Static

from advisor.tui.app import build_app
from advisor.tui.screens.run import RunScreen, failure_report
from advisor.tui.widgets.path_input import complete_path

from .driver import FAKE_EXECUTOR, answer_all, answer_step, execute, handmade_plan

pytestmark = pytest.mark.anyio

SIZES = [(80, 24), (120, 40)]
#: The control that has focus when each step opens: its first question.
FIRST_QUESTION = {1: ("goal", RadioSet), 2: ("task", Select), 3: ("model", Select), 4: ("latency", RadioSet)}


def nothing_cut(app) -> bool:
    """No label, answer or key in the footer is shortened with an ellipsis."""
    return "…" not in app.export_screenshot()


@pytest.mark.parametrize("size", SIZES)
async def test_every_step_opens_on_its_first_question_and_shows_it_whole(size):
    app = build_app(planner=handmade_plan)
    async with app.run_test(size=size) as pilot:
        for number, (field, kind) in FIRST_QUESTION.items():
            await pilot.pause()
            screen = app.screen
            assert screen.NUMBER == number
            assert isinstance(app.focused, kind) and app.focused.id == field, f"step {number}: {app.focused}"
            assert nothing_cut(app), f"step {number} at {size}"
            await answer_step(pilot, {})


@pytest.mark.parametrize("size", SIZES)
async def test_enter_on_step_one_picks_the_answer_and_moves_on(size):
    app = build_app(planner=handmade_plan)
    async with app.run_test(size=size) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.NUMBER == 2 and app.profile.goal == "behavior"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("up", "space")  # space picks without moving on
        await pilot.pause()
        assert app.screen.NUMBER == 1
        await pilot.press("tab", "enter")  # Enter on a checkbox moves on without toggling it
        await pilot.pause()
        assert app.screen.NUMBER == 2 and app.profile.goal == "knowledge" and not app.profile.dynamic_knowledge


def test_path_completion_completes_as_far_as_the_entries_agree(tmp_path):
    (tmp_path / "train.jsonl").write_text("")
    (tmp_path / "train.csv").write_text("")
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    assert complete_path(f"{tmp_path}/tr") == f"{tmp_path}/train."
    assert complete_path(f"{tmp_path}/train.j") == f"{tmp_path}/train.jsonl"
    assert complete_path(f"{tmp_path}/mo") == f"{tmp_path}/models/"
    assert complete_path(f"{tmp_path}/t", directories_only=True) is None
    assert complete_path(f"{tmp_path}/nothing") is None and complete_path("") is None


async def test_a_local_model_folder_is_completed_checked_and_planned(tmp_path):
    folder = tmp_path / "tiny-model"
    folder.mkdir()
    app = build_app(planner=handmade_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        await answer_step(pilot, {})
        await answer_step(pilot, {})
        field = app.screen.query_one("#model_dir", Input)
        field.focus()
        await pilot.press(*f"{tmp_path}/tin")
        await pilot.pause()
        await pilot.press("right")  # takes the greyed completion
        assert field.value == f"{folder}/"
        note = app.screen.query_one("#model_dir-field .question-note", Static)
        assert "has no config.json" in str(note.content) and note.has_class("-error")
        (folder / "config.json").write_text("{}")
        field.value = str(folder)
        await pilot.pause()
        assert not note.has_class("-error")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.NUMBER == 4 and app.profile.model == str(folder)


@pytest.mark.parametrize("size", SIZES)
async def test_the_execute_dialog_opens_on_the_data_field(tmp_path, size):
    app = build_app(planner=handmade_plan, executor=FAKE_EXECUTOR)
    async with app.run_test(size=size) as pilot:
        await answer_all(pilot, {"data": __file__})
        await pilot.press("x")
        await pilot.pause()
        assert app.focused.id == "run-data" and app.focused.value == __file__
        assert nothing_cut(app)


async def test_a_failed_run_shows_its_error_line_exit_code_and_what_to_do(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "x", "label": "a"}\n')
    app = build_app(planner=handmade_plan, executor=[*FAKE_EXECUTOR, "--fail", "1"])
    async with app.run_test(size=(80, 24)) as pilot:
        await answer_all(pilot, {})
        await execute(pilot, data, tmp_path / "run")
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.returncode == 1
        status = str(screen.query_one("#run-status", Static).content)
        assert status.startswith(f"failed (exit 1): error: '{data}' has 3 invalid record(s)")
        assert "what to do: the data or the preflight refused the run" in status
        assert screen.query_one("#run-status").region.bottom <= 24, "the status is on screen"


async def test_the_runs_output_is_laid_out_for_the_log_and_wrapped_whole_at_80_columns(tmp_path):
    app = build_app(planner=handmade_plan, executor=[*FAKE_EXECUTOR, "--fail", "1"])
    async with app.run_test(size=(80, 24)) as pilot:
        await answer_all(pilot, {})
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one("#run-data", Input).value = __file__
        app.screen.query_one("#run-output-dir", Input).value = str(tmp_path / "run")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        log = app.screen.query_one("#run-output")
        width = log.scrollable_content_region.width
        assert f"columns {width}: " in "\n".join(app.screen.output), "the run's console is as wide as the log"
        assert all(line.cell_length <= width for line in log.lines), "no line runs past the log's right edge"


def test_a_failure_without_an_error_line_names_its_last_line():
    assert failure_report(139, ["loading", "Segmentation fault"]).startswith("failed (exit 139): Segmentation fault\n")


async def test_a_hub_id_answer_shows_as_its_catalog_entry():
    from advisor.models import Profile

    app = build_app(Profile(model="meta-llama/Llama-3.1-8B"), planner=handmade_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        await answer_step(pilot, {})
        await answer_step(pilot, {})
        assert app.screen.query_one("#model", Select).value == "llama-3.1-8b"
        assert app.screen.query_one("#model_dir", Input).value == ""
