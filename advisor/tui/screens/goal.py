"""Step 1: what fine-tuning should achieve: knowledge, behaviour or both, and what else holds for it."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from ...models import Profile
from ..widgets.field import FlagsField, RadioField
from .step import StepScreen

BOTH = "both"
GOALS = [
    ("knowledge", "Knowledge: teach it facts it does not know (a domain)"),
    ("behavior", "Behaviour: change how it answers (style, format, a skill)"),
    (BOTH, "Both: new facts and a new way of answering"),
]


def goal_answer(profile: Profile) -> str:
    """The goal option the profile amounts to: one goal, or both when it names more than one."""
    named = profile.all_goals()
    return BOTH if len(named) > 1 else named[0]


def goal_values(choice: str) -> dict[str, Any]:
    """Profile fields of a goal option: both = knowledge first, then behaviour (`--goal` twice)."""
    if choice == BOTH:
        return {"goal": "knowledge", "goals": ["knowledge", "behavior"]}
    return {"goal": choice, "goals": None}


class GoalScreen(StepScreen):
    NUMBER = 1
    INTRO = "What should the model get better at?"

    def compose_questions(self) -> ComposeResult:
        yield RadioField("goal", "Goal", GOALS, goal_answer(self.profile))
        yield FlagsField("Also", [
            ("dynamic_knowledge", "The facts change often (news, prices)", self.profile.dynamic_knowledge),
            ("one_off", "A one-off or rarely repeated task", self.profile.one_off),
            ("keep_general_ability", "It must keep its general ability", self.profile.keep_general_ability),
            ("continual_updates", "It is updated again and again (monthly)", self.profile.continual_updates),
        ])

    def values(self) -> dict[str, Any]:
        return {**goal_values(self.query_one(RadioField).value), **self.query_one(FlagsField).values}
