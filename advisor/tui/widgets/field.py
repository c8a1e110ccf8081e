"""A labelled question bound to one Profile field, checked as the person types.

The check is the CLI's own: `validate_values({field: text})`, so the line
shown under the input is the same one `advisor plan` would print (what
contradicts another answer is said when the step's answers are taken
together, by `validate_profile`). A blank input means "the default", which
the placeholder shows.
"""

from __future__ import annotations

from typing import Any, Optional

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import Suggester
from textual.validation import ValidationResult, Validator
from textual.widgets import Checkbox, Input, Label, RadioButton, RadioSet, Select, Static

from ...errors import UserError
from ...models import Profile, validate_values


class ProfileValidator(Validator):
    """Validates the text of one Profile field with the pydantic model."""

    def __init__(self, field: str) -> None:
        super().__init__()
        self.field = field

    def validate(self, value: str) -> ValidationResult:
        text = value.strip()
        try:
            validate_values({self.field: text} if text else {})
        except UserError as error:
            return self.failure(error.message)
        return self.success()


class EnterPressed(Message):
    """Enter on a choice: the step moves on, as Enter in a text field does (space chooses without moving)."""


class AnswerSet(RadioSet):
    """A RadioSet where space picks the highlighted answer and Enter picks it and moves on."""

    BINDINGS = [
        Binding("space", "toggle_button", "Choose", show=False),
        Binding("enter", "choose_and_next", "Choose and next", show=False),
    ]

    def action_choose_and_next(self) -> None:
        self.action_toggle_button()
        self.post_message(EnterPressed())


class Flag(Checkbox):
    """A Checkbox where space toggles and Enter moves on."""

    BINDINGS = [
        Binding("space", "toggle_button", "Toggle", show=False),
        Binding("enter", "next", "Next", show=False),
    ]

    def action_next(self) -> None:
        self.post_message(EnterPressed())


class QuestionRow(Horizontal):
    """A question on the left, its control and a one-line note (hint or error) on the right."""

    def __init__(self, question: str, note: Optional[str] = None, *, id: Optional[str] = None) -> None:
        super().__init__(id=id, classes="question-row")
        self.question = question
        self.note = note

    def compose(self) -> ComposeResult:
        yield Label(self.question, classes="question-label")
        with Vertical(classes="question-control"):
            yield from self.compose_control()
            if self.note is not None:
                yield Static(self.note, classes="question-note", markup=False)

    def compose_control(self) -> ComposeResult:
        yield from ()


class ProfileField(QuestionRow):
    """A text question for one Profile field; `value` is the text (None when blank)."""

    def __init__(self, field: str, question: str, value: Any, *, input_type: str = "text",
                 placeholder: Optional[str] = None, suggester: Optional[Suggester] = None,
                 note: Optional[str] = None) -> None:
        """`note` (the line under the input) defaults to the Profile field's description."""
        super().__init__(question, note or Profile.model_fields[field].description or "", id=f"{field}-field")
        self.field = field
        self.initial = "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
        default = Profile.model_fields[field].default
        self.placeholder = placeholder or f"default: {'chosen by the plan' if default is None else default}"
        self.input_type = input_type
        self.suggester = suggester

    def compose_control(self) -> ComposeResult:
        yield Input(self.initial, placeholder=self.placeholder, type=self.input_type, id=self.field,
                    validators=[ProfileValidator(self.field)], valid_empty=True, suggester=self.suggester)

    @property
    def value(self) -> Optional[str]:
        return self.query_one(Input).value.strip() or None

    @on(Input.Changed)
    def show_validation(self, event: Input.Changed) -> None:
        note = self.query_one(".question-note", Static)
        failures = event.validation_result.failure_descriptions if event.validation_result else []
        note.update(failures[0] if failures else self.note)
        note.set_class(bool(failures), "-error")


class PathField(QuestionRow):
    """A file-system path question with completion; the screen checks it and updates the note."""

    def __init__(self, name: str, question: str, value: Optional[str], note: str, *, placeholder: str,
                 suggester: Suggester) -> None:
        super().__init__(question, note, id=f"{name}-field")
        self.input_id = name
        self.initial = value or ""
        self.placeholder = placeholder
        self.suggester = suggester

    def compose_control(self) -> ComposeResult:
        yield Input(self.initial, placeholder=self.placeholder, id=self.input_id, suggester=self.suggester)

    @property
    def value(self) -> Optional[str]:
        return self.query_one(Input).value.strip() or None

    def show_note(self, text: str, wrong: bool) -> None:
        note = self.query_one(".question-note", Static)
        note.update(text)
        note.set_class(wrong, "-error")


class ChoiceField(QuestionRow):
    """A pick-one-of-a-list question (a Select) for one Profile field."""

    def __init__(self, field: str, question: str, options: list[tuple[str, Any]], value: Any) -> None:
        super().__init__(question, id=f"{field}-field")
        self.field = field
        self.options = options
        self.initial = value

    def compose_control(self) -> ComposeResult:
        yield Select(self.options, value=self.initial, allow_blank=False, id=self.field)

    @property
    def value(self) -> Any:
        return self.query_one(Select).value


class RadioField(QuestionRow):
    """A question with a few answers, each explained in one line (a RadioSet)."""

    def __init__(self, field: str, question: str, options: list[tuple[Any, str]], value: Any) -> None:
        super().__init__(question, id=f"{field}-field")
        self.field = field
        self.options = options
        self.initial = value

    def compose_control(self) -> ComposeResult:
        with AnswerSet(id=self.field):
            for value, label in self.options:
                yield RadioButton(label, value=value == self.initial)

    def on_mount(self) -> None:
        self.call_after_refresh(self._highlight_the_answer)

    def _highlight_the_answer(self) -> None:
        """Start the keyboard cursor on the chosen answer, not on the first one."""
        radio_set = self.query_one(RadioSet)
        for _ in range(max(radio_set.pressed_index, 0)):
            radio_set.action_next_button()

    @property
    def value(self) -> Any:
        index = self.query_one(RadioSet).pressed_index
        return self.options[index][0] if index >= 0 else None


class FlagsField(QuestionRow):
    """Yes/no statements (Checkboxes), one per boolean Profile field."""

    def __init__(self, question: str, flags: list[tuple[str, str, bool]], *, id: Optional[str] = None) -> None:
        super().__init__(question, id=id)
        self.flags = flags
        self.add_class("flags")

    def compose_control(self) -> ComposeResult:
        for field, label, value in self.flags:  # compact: one line each, so four fit at 80x24
            yield Flag(label, value, id=field, compact=True)

    @property
    def values(self) -> dict[str, bool]:
        return {box.id: box.value for box in self.query(Checkbox) if box.id}
