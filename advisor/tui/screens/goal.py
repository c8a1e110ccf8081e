"""Step 1: what fine-tuning should achieve: knowledge or behaviour, fresh facts, one-off use."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from ..widgets.field import FlagsField, RadioField
from .step import StepScreen

GOALS = [
    ("knowledge", "Knowledge: teach it facts it does not know (a domain)"),
    ("behavior", "Behaviour: change how it answers (style, format, a skill)"),
]


class GoalScreen(StepScreen):
    NUMBER = 1
    INTRO = "What should the model get better at?"

    def compose_questions(self) -> ComposeResult:
        yield RadioField("goal", "Goal", GOALS, self.profile.goal)
        yield FlagsField("Also", [
            ("dynamic_knowledge", "The facts change often (news, prices)", self.profile.dynamic_knowledge),
            ("one_off", "A one-off or rarely repeated task", self.profile.one_off),
        ])

    def values(self) -> dict[str, Any]:
        return {"goal": self.query_one(RadioField).value, **self.query_one(FlagsField).values}
