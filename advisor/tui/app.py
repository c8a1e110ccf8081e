"""The wizard app: four question steps, the recommendation, then an optional run.

`build_app` is the one way to make it, for `advisor wizard` and for the tests.
The app keeps the answers as one Profile; each step posts what it was given
(`StepScreen.Answered`) and the app merges it and opens the next screen. The
planning is the core's (`advisor.planner.plan_for`), the running is
`advisor execute` in a subprocess: the app holds no planning logic.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

from textual import on
from textual.app import App
from textual.binding import Binding

from ..models import Plan, Profile
from ..planner import plan_for
from .answers import answer
from .screens.goal import GoalScreen
from .screens.hardware import HardwareScreen
from .screens.help import HelpScreen
from .screens.recommendation import RecommendationScreen
from .screens.serving import ServingScreen
from .screens.step import StepScreen
from .screens.task_data import TaskDataScreen

STEPS = (GoalScreen, TaskDataScreen, HardwareScreen, ServingScreen)

Planner = Callable[[Profile], Plan]


class AdvisorApp(App[None]):
    CSS_PATH = "advisor.tcss"
    TITLE = "advisor"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
        Binding("ctrl+t", "toggle_dark", "Theme"),
    ]

    def __init__(self, profile: Profile, planner: Planner, executor: Sequence[str]) -> None:
        super().__init__()
        self.profile = profile
        self.planner = planner
        self.executor = list(executor)

    def on_mount(self) -> None:
        self.push_screen(GoalScreen(self.profile))

    @on(StepScreen.Answered)
    def next_step(self, event: StepScreen.Answered) -> None:
        self.profile = answer(self.profile, event.values)
        if event.number < len(STEPS):
            self.push_screen(STEPS[event.number](self.profile))
        else:
            self.push_screen(RecommendationScreen(self.profile))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


def build_app(profile: Optional[Profile] = None, *, planner: Optional[Planner] = None,
              executor: Optional[Sequence[str]] = None) -> AdvisorApp:
    """The wizard, starting from `profile`'s answers; `planner` and `executor` default to the core's."""
    return AdvisorApp(
        profile=profile or Profile(),
        planner=planner or plan_for,
        executor=executor or [sys.executable, "-m", "advisor", "execute"],
    )
