"""Driving the wizard in tests: answering the steps, a hand-made plan, a stand-in executor."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, RadioSet

from advisor.knowledge_base import models
from advisor.models import (
    Alternative, Estimate, MemoryEstimate, Plan, Profile, Rationale, Recommendation, StorageEstimate,
    TimeEstimate, Training, TrainingHyperparameters,
)
from advisor.tui.widgets.field import RadioField

#: The Profile fields each step asks, in order ("goal" takes "both" for knowledge and behaviour).
STEP_FIELDS = (
    ("goal", "dynamic_knowledge", "one_off", "keep_general_ability", "continual_updates"),
    ("task", "examples", "quality", "data", "language", "corpus_tokens"),
    ("model", "gpu", "num_gpus", "num_nodes", "gpu_memory_gib", "price_per_hour"),
    ("latency", "tasks", "seq_len", "batch_size"),
)
FAKE_EXECUTOR = [sys.executable, str(Path(__file__).parent / "fake_executor.py")]


async def start_run(pilot: Pilot, data: Path, output_dir: Path) -> None:
    """From the recommendation: x, name the data and the output directory, Enter (the run starts)."""
    await pilot.press("x")
    await pilot.pause()
    pilot.app.screen.query_one("#run-data", Input).value = str(data)
    pilot.app.screen.query_one("#run-output-dir", Input).value = str(output_dir)
    await pilot.press("enter")
    await pilot.pause()


async def execute(pilot: Pilot, data: Path, output_dir: Path) -> None:
    """start_run, and wait until the run has ended (or the dialog refused it)."""
    await start_run(pilot, data, output_dir)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def answer_step(pilot: Pilot, values: dict[str, Any]) -> None:
    """Set the current step's controls to `values` (by Profile field), then press ctrl+n."""
    screen = pilot.app.screen
    for field, value in values.items():
        if field == "model" and value not in models():
            field = "model_dir"  # a local folder goes in the field under the catalog list
        control = screen.query_one(f"#{field}")
        if isinstance(control, RadioSet):
            options = [option for option, _ in screen.query_one(f"#{field}-field", RadioField).options]
            control.query("RadioButton")[options.index(value)].value = True
        elif isinstance(control, Input):
            control.value = str(value)
        else:
            control.value = value
    await pilot.pause()
    await pilot.press("ctrl+n")
    await pilot.pause()


async def answer_all(pilot: Pilot, answers: dict[str, Any]) -> None:
    """Walk the four steps with `answers`, then wait for the recommendation's plan."""
    for fields in STEP_FIELDS:
        await answer_step(pilot, {field: answers[field] for field in fields if field in answers})
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def handmade_plan(profile: Profile) -> Plan:
    """A fixed plan for tests of the screens themselves (not of the planner)."""
    method = profile.method or "qlora"
    return Plan(
        profile=profile,
        recommendation=Recommendation(approach="peft", method=method,
                                      summary=f"Fine-tune {profile.model} with {method}."),
        rationale=[Rationale(rule="approach.behavior", message="Behaviour is what fine-tuning changes well.",
                             source="000_guide.txt § When to fine-tune")],
        estimate=Estimate(
            memory=MemoryEstimate(peak_gib=14.2, per_device_gib=14.2, overhead_gib=0.6,
                                  breakdown={"weights": 5.1, "optimizer": 0.9, "activations": 8.2}),
            device_memory_gib=23.53, fits=True,
            storage=StorageEstimate(per_task_mb=160.2, total_mb=160.2),
            time=TimeEstimate(tokens_per_s=2500, train_tokens=10_000_000, hours=1.1),
        ),
        alternatives=[
            Alternative(approach="peft", method="lora", fits=False, peak_gib=31.2, why_not="does not fit [24 GiB]"),
            Alternative(approach="full_finetune", method="full", fits=False, peak_gib=120.1, why_not="does not fit"),
        ],
        training=Training(method=method, hyperparameters=TrainingHyperparameters(learning_rate=2e-4)),
        warnings=["Only 1000 examples: expect a modest gain."],
    )
