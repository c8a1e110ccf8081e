"""Disk space per task and in total: an adapter per task on a shared base, or a full model per task.

estimator.py calls `storage_estimate`; the planner compares the merged and
unmerged figures when many tasks share one base model. Sizes are decimal MB
(10^6 bytes), as disks and the Hub count them.

An adapter file is peft's `adapter_model.safetensors`: every saved parameter in
its training dtype (peft keeps adapters in fp32), a JSON header of about one
line per tensor, plus `adapter_config.json`. A full checkpoint holds every base
parameter in the dtype the model trains in.
"""

from __future__ import annotations

from ..architecture import Architecture
from ..methods import Footprint
from ..models import StorageEstimate
from .activations import ADAPTER_BYTES
from .memory import base_param_bytes

MB = 1e6
#: safetensors header bytes per tensor (name, dtype, shape, offsets as JSON).
HEADER_BYTES_PER_TENSOR = 150
#: peft's adapter_config.json.
ADAPTER_CONFIG_BYTES = 1_000
#: The base model as published (and served): bf16.
BASE_BYTES_PER_PARAM = 2


def saves_full_model(arch: Architecture, fp: Footprint) -> bool:
    """Full fine-tuning and layer freezing save a whole checkpoint per task; adapters save only themselves."""
    return fp.added_params == 0 or (fp.storage_params or 0) >= arch.total_params()


def adapter_tensors(arch: Architecture, fp: Footprint) -> int:
    """Tensors in the adapter file: A and B per adapted linear (and MoE expert weight) per layer, else one (the
    prompt/prefix table)."""
    if fp.adapter_rank and fp.adapted_linears:
        adapted = arch.linears_named(fp.adapted_linears)
        return 2 * len(adapted) * arch.num_layers + 2 * len(fp.adapted_experts) * arch.moe_layers
    return 1


def adapter_bytes(arch: Architecture, fp: Footprint) -> float:
    params = fp.storage_params if fp.storage_params is not None else fp.trainable_params
    return params * ADAPTER_BYTES + adapter_tensors(arch, fp) * HEADER_BYTES_PER_TENSOR + ADAPTER_CONFIG_BYTES


def full_checkpoint_bytes(arch: Architecture, precision: str) -> float:
    return arch.total_params() * base_param_bytes(precision)


def storage_estimate(arch: Architecture, fp: Footprint, precision: str, tasks: int, merged: bool = False) -> StorageEstimate:
    """What `tasks` fine-tuned variants take on disk.

    Adapters unmerged: one shared base plus an adapter per task. Merged (or a
    method that saves the whole model): a full checkpoint per task.
    """
    full = full_checkpoint_bytes(arch, precision)
    base = arch.total_params() * BASE_BYTES_PER_PARAM
    if saves_full_model(arch, fp) or merged:
        per_task = full if saves_full_model(arch, fp) else base
        return _in_mb(per_task, per_task * tasks, 0.0, full, merged=True)
    per_task = adapter_bytes(arch, fp)
    return _in_mb(per_task, base + per_task * tasks, base, full, merged=False)


def _in_mb(per_task: float, total: float, base: float, full: float, merged: bool) -> StorageEstimate:
    return StorageEstimate(
        per_task_mb=round(per_task / MB, 3), total_mb=round(total / MB, 3), base_mb=round(base / MB, 3),
        full_checkpoint_mb=round(full / MB, 3), merged=merged,
    )
