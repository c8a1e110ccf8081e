"""What every question step shares: Back/Next, the step counter, and checking the answers.

A step gets the current Profile (attributes down), shows its questions with
the current answers or the defaults, and on Next posts `Answered` with its
values (messages up) once `advisor.tui.answers.answer` accepts them; the app
then opens the next step. A value it refuses is shown as one line, the
CLI's own error message.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Static

from ...errors import UserError
from ...models import Profile
from ..answers import answer, given
from ..widgets.field import EnterPressed

STEP_TITLES = ("Goal", "Task and data", "Model and hardware", "Serving")


class StepScreen(Screen):
    NUMBER: ClassVar[int]
    INTRO: ClassVar[str]
    # Under 100 columns a question's label goes above its control, so the answers are not cut.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]

    BINDINGS = [
        Binding("ctrl+n", "next", "Next", tooltip="Next step (Enter in a field or on a choice does the same)"),
        Binding("escape", "back", "Back", tooltip="The previous step; the answers stay"),
    ]

    class Answered(Message):
        """The step's answers (None = the default), accepted by the Profile model."""

        def __init__(self, number: int, values: dict[str, Any]) -> None:
            super().__init__()
            self.number = number
            self.values = values

    def __init__(self, profile: Profile) -> None:
        super().__init__()
        self.profile = profile
        self.answers = given(profile)  # what the person said; a blank field shows the default instead
        self.sub_title = f"step {self.NUMBER} of {len(STEP_TITLES)} · {STEP_TITLES[self.NUMBER - 1]}"

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(classes="step-body"):
            yield Static(self.INTRO, classes="step-intro")
            yield from self.compose_questions()
            yield Static(classes="step-error", markup=False)
        with Horizontal(classes="step-nav"):
            yield Button("← Back", id="back", compact=True, disabled=self.NUMBER == 1)
            yield Static(self._progress_dots(), classes="step-dots")
            yield Button("Next →", id="next", compact=True, variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        """Typing goes to the first question, never to a control further down."""
        for widget in self.query_one(".step-body").query("*"):
            if widget.focusable:
                widget.focus()
                break

    def compose_questions(self) -> ComposeResult:
        raise NotImplementedError

    def values(self) -> dict[str, Any]:
        """The answers on this screen, by Profile field; None means the default."""
        raise NotImplementedError

    def _progress_dots(self) -> str:
        return " ".join("●" if n <= self.NUMBER else "○" for n in range(1, len(STEP_TITLES) + 1))

    @on(Button.Pressed, "#next")
    @on(Input.Submitted)
    @on(EnterPressed)
    def action_next(self) -> None:
        values = self.values()
        error = self.query_one(".step-error", Static)
        try:
            answer(self.profile, values)
        except UserError as problem:
            error.update(f"error: {problem.message}")
            return
        error.update("")
        self.post_message(self.Answered(self.NUMBER, values))

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        if self.NUMBER > 1:
            self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool:
        return action != "back" or self.NUMBER > 1
