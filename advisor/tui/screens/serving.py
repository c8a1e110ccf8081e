"""Step 4: how the result will be served (latency, how many tasks), and the training shape if known."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Collapsible

from ..widgets.field import ProfileField, RadioField
from .step import StepScreen

LATENCY = [
    ("strict", "Strict: no added latency (adapters must merge)"),
    ("moderate", "Moderate: a little overhead is fine (default)"),
    ("relaxed", "Relaxed: latency hardly matters"),
]


class ServingScreen(StepScreen):
    NUMBER = 4
    INTRO = "How will the fine-tuned model be served?"

    def compose_questions(self) -> ComposeResult:
        yield RadioField("latency", "Latency", LATENCY, self.profile.latency)
        yield ProfileField("tasks", "Tasks served", self.answers.get("tasks"), input_type="integer")
        shape_given = bool({"seq_len", "batch_size"} & set(self.answers))
        with Collapsible(title="Training shape (optional)", collapsed=not shape_given):
            with Vertical():
                yield ProfileField("seq_len", "Sequence length", self.answers.get("seq_len"), input_type="integer")
                yield ProfileField("batch_size", "Micro-batch size", self.answers.get("batch_size"),
                                   input_type="integer")

    def values(self) -> dict[str, Any]:
        return {
            "latency": self.query_one(RadioField).value,
            "tasks": self.query_one("#tasks-field", ProfileField).value,
            "seq_len": self.query_one("#seq_len-field", ProfileField).value,
            "batch_size": self.query_one("#batch_size-field", ProfileField).value,
        }
