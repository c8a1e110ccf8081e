"""What to try after an out-of-memory error at run time, in order, keeping the effective batch.

`local.py` catches `torch.OutOfMemoryError` around `trainer.train()`, asks
`next_shape` for the next configuration, logs the change in metrics.json and
retries from the last checkpoint. The order is the estimator's cheapest
saving first: gradient checkpointing (activations of one layer instead of all,
about a third more compute), then half the micro-batch with twice the
accumulation (same optimizer steps and, for an even micro-batch, the same
effective batch, so the schedule and a checkpoint's step count stay valid).
Batch 1 with checkpointing is the end.
"""

from __future__ import annotations

from typing import Optional

from .models import TrainShape


def next_shape(shape: TrainShape) -> Optional[TrainShape]:
    if not shape.gradient_checkpointing:
        return shape.model_copy(update={"gradient_checkpointing": True})
    if shape.batch_size > 1:
        return shape.model_copy(
            update={
                "batch_size": shape.batch_size // 2,
                "gradient_accumulation_steps": shape.gradient_accumulation_steps * 2,
            }
        )
    return None


def describe(before: TrainShape, after: TrainShape) -> str:
    if after.gradient_checkpointing and not before.gradient_checkpointing:
        return "gradient checkpointing on"
    return (
        f"micro-batch {before.batch_size} -> {after.batch_size}, "
        f"accumulation {before.gradient_accumulation_steps} -> {after.gradient_accumulation_steps}"
    )
