"""Step 3: the base model and the machines: a GPU from the catalog (or CPU), how many, on how many machines,
custom memory.

The model is a catalog entry, or a local folder holding a config.json typed
(with path completion) in the field below the list; a folder, when given, wins.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import Input, Select

from ...knowledge_base import gpus, model_key, model_names, models
from ..answers import default
from ..widgets.field import ChoiceField, PathField, ProfileField
from ..widgets.path_input import PathSuggester
from .step import StepScreen


def model_options() -> list[tuple[str, str]]:
    return [(f"{entry.id} · {entry.architecture.total_params() / 1e9:.2g}B parameters"
             + (" (default)" if entry.id == default("model") else ""), entry.id) for entry in models().values()]


def model_folder_note(text: str) -> tuple[str, bool]:
    """What the local-folder field says about `text`, and whether that is an error."""
    if not text:
        return "optional: a folder with config.json (and weights) instead of the list above", False
    folder = Path(text).expanduser()
    if not folder.is_dir():
        return f"no folder '{text}'", True
    if not (folder / "config.json").is_file():
        return f"'{text}' has no config.json", True
    return f"model folder '{folder.name}' (replaces the choice above)", False


def gpu_options() -> list[tuple[str, str]]:
    return [(f"{entry.id} · {entry.name}"
             + (" (default)" if entry.id == default("gpu") else ""), entry.id) for entry in gpus().values()]


class HardwareScreen(StepScreen):
    NUMBER = 3
    INTRO = "Which model, and what will it train on? Pick 'cpu' when there is no GPU."

    def compose_questions(self) -> ComposeResult:
        catalog_id = model_names().get(model_key(self.profile.model))  # a hub id or alias shows as its entry
        yield ChoiceField("model", "Base model", model_options(), catalog_id or default("model"))
        yield PathField("model_dir", "or a local folder", None if catalog_id else self.profile.model,
                        model_folder_note("")[0], placeholder="path to a model folder; → completes",
                        suggester=PathSuggester(directories_only=True))
        yield ChoiceField("gpu", "Accelerator", gpu_options(), self.profile.gpu)
        yield ProfileField("num_gpus", "How many", self.answers.get("num_gpus"), input_type="integer",
                           note="devices on each machine")
        yield ProfileField("num_nodes", "Machines", self.answers.get("num_nodes"), input_type="integer",
                           note="machines, each with that many devices")
        yield ProfileField("gpu_memory_gib", "Memory per device (GiB)", self.answers.get("gpu_memory_gib"),
                           input_type="number", placeholder="default: the catalog's figure")
        yield ProfileField("price_per_hour", "Price per device-hour", self.answers.get("price_per_hour"),
                           input_type="number", placeholder="optional, for a cost estimate")

    @on(Input.Changed, "#model_dir")
    def check_model_folder(self, event: Input.Changed) -> None:
        self.query_one("#model_dir-field", PathField).show_note(*model_folder_note(event.value.strip()))

    def values(self) -> dict[str, Any]:
        folder = self.query_one("#model_dir-field", PathField).value
        return {
            "model": os.path.normpath(folder) if folder else self.query_one("#model", Select).value,
            "gpu": self.query_one("#gpu", Select).value,
            "num_gpus": self.query_one("#num_gpus-field", ProfileField).value,
            "num_nodes": self.query_one("#num_nodes-field", ProfileField).value,
            "gpu_memory_gib": self.query_one("#gpu_memory_gib-field", ProfileField).value,
            "price_per_hour": self.query_one("#price_per_hour-field", ProfileField).value,
        }
