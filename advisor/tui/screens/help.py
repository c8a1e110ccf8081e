"""The help screen: help.md rendered as Markdown over the wizard; any of Escape, F1 or q closes it."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP_FILE = Path(__file__).parent.parent / "help.md"


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close help")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="help-box") as box:
            box.border_title = "Help"
            yield Markdown(HELP_FILE.read_text(encoding="utf-8"))
