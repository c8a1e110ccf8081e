"""Small modal questions: confirm, name a file, choose what to run. Each dismisses with its answer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ..widgets.path_input import PathSuggester


class ConfirmDialog(ModalScreen[bool]):
    """Yes or no; Escape is no."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(classes="dialog")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box") as box:
            box.border_title = "Confirm"
            yield Static(self.question, markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes [y]", id="yes", variant="warning", compact=True)
                yield Button("No [n]", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no").focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class SavePlanDialog(ModalScreen[Optional[Path]]):
    """Where to save the plan; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, suggestion: str) -> None:
        super().__init__(classes="dialog")
        self.suggestion = suggestion

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box") as box:
            box.border_title = "Save the plan"
            yield Label("File (the same JSON as `advisor plan --json`):")
            yield Input(self.suggestion, id="plan-path", suggester=PathSuggester())
            yield Static("Enter saves, Escape cancels", classes="dialog-note")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Path(event.value.strip()).expanduser())

    def action_cancel(self) -> None:
        self.dismiss(None)


class RunRequest(BaseModel):
    data: Path
    output_dir: Path


class ExecuteDialog(ModalScreen[Optional[RunRequest]]):
    """The data to train on and a new output directory; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, data: Optional[str], output_dir: str) -> None:
        super().__init__(classes="dialog")
        self.data = data or ""
        self.output_dir = output_dir

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box") as box:
            box.border_title = "Execute the plan"
            yield Label("Training data (JSONL, JSON, CSV or Parquet):")
            yield Input(self.data, id="run-data", placeholder="path to the data file; → completes",
                        suggester=PathSuggester())
            yield Label("Output directory (a new one):")
            yield Input(self.output_dir, id="run-output-dir", suggester=PathSuggester(directories_only=True))
            yield Static("The plan is saved beside it as DIRECTORY.plan.json. Enter starts, Escape cancels",
                         classes="dialog-note", markup=False)

    def on_mount(self) -> None:
        self.query_one("#run-data").focus()  # the first field, always: typing never lands further down

    @on(Input.Submitted)
    def submit(self) -> None:
        data = self.query_one("#run-data", Input).value.strip()
        output_dir = self.query_one("#run-output-dir", Input).value.strip()
        note = self.query_one(".dialog-note", Static)
        if not data or not Path(data).expanduser().is_file():
            note.update(f"error: no data file '{data}'")
            self.query_one("#run-data").focus()
        elif not output_dir:
            note.update("error: name an output directory")
        else:
            self.dismiss(RunRequest(data=Path(data).expanduser(), output_dir=Path(output_dir).expanduser()))

    def action_cancel(self) -> None:
        self.dismiss(None)
