"""The training loss as it comes in: a sparkline and the latest numbers."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from ..progress import ProgressEvent


class LossChart(Vertical):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.losses: list[float] = []
        self.eval_losses: list[float] = []

    def on_mount(self) -> None:
        self.border_title = "Training loss"

    def compose(self) -> ComposeResult:
        yield Static("loss: waiting for the first step", id="loss-numbers", markup=False)
        yield Sparkline([], id="loss-sparkline")

    def add(self, events: list[ProgressEvent]) -> None:
        self.losses += [event.loss for event in events if event.loss is not None]
        self.eval_losses += [event.eval_loss for event in events if event.eval_loss is not None]
        if not self.losses:
            return
        self.query_one(Sparkline).data = list(self.losses)
        text = f"loss {self.losses[-1]:.4f} (first {self.losses[0]:.4f}, lowest {min(self.losses):.4f})"
        if self.eval_losses:
            text += f" · validation loss {self.eval_losses[-1]:.4f}"
        self.query_one("#loss-numbers", Static).update(text)
