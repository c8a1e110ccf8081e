"""A third-party method plugin for test_distributed.py: LoRA and full fine-tuning that run out of memory once.

test_distributed.py puts this directory on PYTHONPATH with a dist-info naming
this module under the `advisor` entry-point group, so every launched process
finds the methods the way it finds an installed plugin: advisor itself has no
test hook. In process 1 (torchrun's RANK), once OOM_STEP steps are done,
a callback raises torch.OutOfMemoryError, once: it leaves a marker file
(ADVISOR_TEST_OOM_MARKER) so that the run continued with --resume goes through.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from advisor import hookimpl
from advisor.plugins import full, lora

#: After step 3: its collectives guarantee that every process finished writing the checkpoint of step 2.
OOM_STEP = 3


def _out_of_memory_once() -> Any:
    import torch
    from transformers import TrainerCallback

    class OutOfMemoryOnce(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            marker = Path(os.environ["ADVISOR_TEST_OOM_MARKER"])
            if state.global_step == OOM_STEP and os.environ.get("RANK") == "1" and not marker.exists():
                marker.touch()
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    return OutOfMemoryOnce()


class OomLoRA(lora.LoRA):
    def training_callbacks(self, model: Any, hp: Any) -> list[Any]:
        return [*super().training_callbacks(model, hp), _out_of_memory_once()]


class OomFull(full.FullFineTuning):
    def training_callbacks(self, model: Any, hp: Any) -> list[Any]:
        return [*super().training_callbacks(model, hp), _out_of_memory_once()]


@hookimpl
def advisor_register_methods(register):
    register(OomLoRA(**{**dict(lora.METHOD), "name": "oom-lora"}))
    register(OomFull(**{**dict(full.METHOD), "name": "oom-full"}))
