"""Step 3: the base model and the machine: a GPU from the catalog (or CPU), how many, custom memory."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Select

from ...knowledge_base import gpus, models
from ..answers import default
from ..widgets.field import ChoiceField, ProfileField
from .step import StepScreen


def model_options(current: str) -> list[tuple[str, str]]:
    options = [(f"{entry.id} · {entry.architecture.total_params() / 1e9:.2g}B parameters"
                + (" (default)" if entry.id == default("model") else ""), entry.id) for entry in models().values()]
    if current not in models():
        options.append((f"{current} (local directory)", current))
    return options


def gpu_options() -> list[tuple[str, str]]:
    return [(f"{entry.id} · {entry.name}"
             + (" (default)" if entry.id == default("gpu") else ""), entry.id) for entry in gpus().values()]


class HardwareScreen(StepScreen):
    NUMBER = 3
    INTRO = "Which model, and what will it train on? Pick 'cpu' when there is no GPU."

    def compose_questions(self) -> ComposeResult:
        yield ChoiceField("model", "Base model", model_options(self.profile.model), self.profile.model)
        yield ChoiceField("gpu", "Accelerator", gpu_options(), self.profile.gpu)
        yield ProfileField("num_gpus", "How many", self.answers.get("num_gpus"), input_type="integer")
        yield ProfileField("gpu_memory_gib", "Memory per device (GiB)", self.answers.get("gpu_memory_gib"),
                           input_type="number", placeholder="default: the catalog's figure")
        yield ProfileField("price_per_hour", "Price per device-hour", self.answers.get("price_per_hour"),
                           input_type="number", placeholder="optional, for a cost estimate")

    def values(self) -> dict[str, Any]:
        return {
            "model": self.query_one("#model", Select).value,
            "gpu": self.query_one("#gpu", Select).value,
            "num_gpus": self.query_one("#num_gpus-field", ProfileField).value,
            "gpu_memory_gib": self.query_one("#gpu_memory_gib-field", ProfileField).value,
            "price_per_hour": self.query_one("#price_per_hour-field", ProfileField).value,
        }
