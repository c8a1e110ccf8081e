"""Memory, storage and time for one training configuration. Pure Python, no torch.

Callers (the planner, `advisor estimate`, the preflight) build an
`EstimateRequest` from an architecture and a method's `Footprint`, and get an
`advisor.models.Estimate` back from `estimate()`; `search.best_fit` finds the
least compromising configuration that fits. Inside: activations.py (bytes
autograd keeps, op by op), memory.py (the step's peak), sharding.py
(multi-GPU), storage.py, throughput.py, calibration.py (the global
coefficients), estimator.py (puts them together).
"""

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..architecture import Architecture
from ..knowledge_base import GpuEntry
from ..methods import Footprint
from ..models import Offload, Optimizer, Precision, Sharding


class EstimateRequest(BaseModel):
    """One training configuration to estimate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: Architecture
    footprint: Footprint
    precision: Precision = Field("bf16", description="bf16: everything bf16; mixed: fp32 master weights + bf16 autocast")
    batch_size: int = Field(1, ge=1)
    seq_len: int = Field(512, ge=1)
    gradient_checkpointing: bool = False
    num_gpus: int = Field(1, ge=1, description="devices per node")
    num_nodes: int = Field(1, ge=1)
    sharding: Sharding = "none"
    offload: Offload = "none"
    optimizer: Optimizer = "adamw"
    adamw_implementation: Literal["fused", "foreach"] = Field(
        "fused", description="torch AdamW's kernel: fused (what advisor execute runs) or foreach (torch's CUDA default)")
    head: Literal["lm", "classification"] = "lm"
    num_labels: int = Field(2, ge=1)
    gpu: Optional[GpuEntry] = None
    device_memory_gib: Optional[float] = Field(None, gt=0, description="overrides gpu.memory_gib")
    tasks: int = Field(1, ge=1)
    train_tokens: Optional[int] = Field(None, ge=0, description="tokens processed over the whole run")
    kfold: Optional[int] = Field(None, ge=2, description="the run is k-fold: train_tokens covers the k fold models "
                                 "and the final one (the time estimate says so)")
    price_per_hour: Optional[float] = Field(None, ge=0)
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-batches per optimizer step")
    fused_cross_entropy: bool = Field(False, description="LM head + loss without the full logits (liger / chunked)")
    packed_mean_tokens: Optional[float] = Field(
        None, gt=0, description="packing on: the data's mean tokens per example, the real tokens the time model counts "
        "per row (the memory peak stays at seq_len, the worst case)"
    )


from .estimator import estimate  # noqa: E402  (needs EstimateRequest defined first)

__all__ = ["EstimateRequest", "estimate"]
