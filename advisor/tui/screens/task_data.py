"""Step 2: the task family, how many examples and how good they are, or a data file that says so;
the data's language, and an unlabelled domain corpus for continued pre-training first.

Enter in the data field runs the data validator (in a worker thread) and fills
task, examples and quality from its report, as `advisor plan --data` would.
"""

from __future__ import annotations

from typing import Any, get_args

from textual import on, work
from textual.app import ComposeResult
from textual.widgets import Input, Select, Static

from ...errors import UserError
from ...models import Quality, Task
from ..answers import default
from ..widgets.field import ChoiceField, ProfileField
from ..widgets.path_input import PathSuggester
from .step import StepScreen


def labelled(values: tuple[str, ...], field: str) -> list[tuple[str, str]]:
    return [(f"{value} (default)" if value == default(field) else value, value) for value in values]


class TaskDataScreen(StepScreen):
    NUMBER = 2
    INTRO = "What is the task, and what data do you have? Give a data file to have these read from it."

    def compose_questions(self) -> ComposeResult:
        yield ChoiceField("task", "Task family", labelled(get_args(Task), "task"), self.profile.task)
        yield ProfileField("examples", "Examples", self.answers.get("examples"), input_type="integer")
        yield ChoiceField("quality", "Data quality", labelled(get_args(Quality), "quality"), self.profile.quality)
        yield ProfileField("data", "Data file (optional)", self.answers.get("data"),
                           placeholder="JSONL, JSON, CSV or Parquet; → completes, Enter reads it",
                           suggester=PathSuggester())
        yield Static(classes="data-report", markup=False)
        yield ProfileField("language", "Language", self.answers.get("language"),
                           placeholder="default: en (an ISO 639 code: de, zh, ...)")
        yield ProfileField("corpus_tokens", "Domain corpus (tokens)", self.answers.get("corpus_tokens"),
                           input_type="integer", placeholder="optional: unlabelled text to pre-train on first",
                           note="tokens of unlabelled domain text: a plan in two stages, continued "
                                "pre-training on it, then tuning on the examples")

    def values(self) -> dict[str, Any]:
        return {
            "task": self.query_one("#task", Select).value,
            "examples": self.query_one("#examples-field", ProfileField).value,
            "quality": self.query_one("#quality", Select).value,
            "data": self.query_one("#data-field", ProfileField).value,
            "language": self.query_one("#language-field", ProfileField).value,
            "corpus_tokens": self.query_one("#corpus_tokens-field", ProfileField).value,
        }

    @on(Input.Submitted, "#data")
    def read_data(self, event: Input.Submitted) -> None:
        event.prevent_default()  # Enter here reads the file instead of moving on (StepScreen's handler)
        if event.value.strip():
            self.query_one(".data-report", Static).update(f"reading {event.value.strip()} ...")
            self.validate_data(event.value.strip())

    @work(thread=True, exclusive=True, group="data")
    def validate_data(self, path: str) -> None:
        from ...data import profile_hints, validate_file

        try:
            report = validate_file(path)
        except UserError as error:
            self.app.call_from_thread(self.show_report, f"error: {error.message}", {}, False)
        else:
            state = "valid" if report.ok else f"{report.error_count} bad records (`advisor validate` lists them)"
            summary = f"{report.valid_records} valid of {report.records} records, {report.format} format, {state}"
            self.app.call_from_thread(self.show_report, summary, profile_hints(report), report.ok)

    def show_report(self, summary: str, hints: dict[str, Any], ok: bool) -> None:
        """Fill the questions the data answers, and say what was read."""
        if "task" in hints:
            self.query_one("#task", Select).value = hints["task"]
        if "quality" in hints:
            self.query_one("#quality", Select).value = hints["quality"]
        if "examples" in hints:
            self.query_one("#examples", Input).value = str(hints["examples"])
        filled = ", ".join(key for key in ("task", "examples", "quality") if key in hints)
        report = self.query_one(".data-report", Static)
        report.update(summary + (f"; filled in {filled}" if filled else ""))
        report.set_class(not ok, "-error")
