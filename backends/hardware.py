"""Which device a run uses and in which precision: the plan's wish, bounded by this machine.

`local.py` asks before loading the model; the CLI asks first of all, so a plan
this machine cannot run (4-bit QLoRA without CUDA) is refused in one line
before anything loads.

| plan precision | CUDA with bf16 | CUDA without bf16 | CPU / MPS |
|----------------|----------------|-------------------|-----------|
| bf16           | bf16 weights + bf16 autocast | fp32 weights + fp16 autocast | fp32 |
| mixed          | fp32 weights + bf16 autocast | fp32 weights + fp16 autocast | fp32 |
| fp16           | fp32 weights + fp16 autocast | fp32 weights + fp16 autocast | fp32 |
| fp32           | fp32 | fp32 | fp32 |

fp16 weights are never trained directly (the grad scaler refuses them);
bf16 weights are, which is the estimator's `full_bf16` recipe.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict

from ..errors import UserError
from ..methods import Method

DeviceKind = Literal["cuda", "mps", "cpu"]


class Device(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: DeviceKind
    name: str
    bf16: bool = False


class Precision(BaseModel):
    """How weights are stored and which autocast the Trainer applies."""

    model_config = ConfigDict(frozen=True)

    weights: Literal["float32", "bfloat16"]
    autocast: Optional[Literal["bf16", "fp16"]] = None

    @property
    def label(self) -> str:
        if self.weights == "bfloat16":
            return "bf16"
        return f"{self.autocast} mixed" if self.autocast else "fp32"

    def trainer_flags(self) -> dict[str, bool]:
        """TrainingArguments' bf16/fp16 switches."""
        return {"bf16": self.autocast == "bf16", "fp16": self.autocast == "fp16"}


def detect_device() -> Device:
    import torch

    if torch.cuda.is_available():
        return Device(kind="cuda", name=torch.cuda.get_device_name(0), bf16=torch.cuda.is_bf16_supported())
    if torch.backends.mps.is_available():
        return Device(kind="mps", name="Apple MPS")
    return Device(kind="cpu", name="CPU")


def resolve_precision(plan_precision: str, device: Device) -> Precision:
    if device.kind != "cuda" or plan_precision == "fp32":
        return Precision(weights="float32")
    if plan_precision == "bf16" and device.bf16:
        return Precision(weights="bfloat16", autocast="bf16")
    if plan_precision == "mixed" and device.bf16:
        return Precision(weights="float32", autocast="bf16")
    return Precision(weights="float32", autocast="fp16")


def check_method_runs_here(method: Method, device: Device) -> None:
    """A CUDA-only method (4-bit QLoRA) on a machine without CUDA: one line, exit 2."""
    if method.requires_cuda and device.kind != "cuda":
        raise UserError(
            f"method '{method.name}' needs a CUDA GPU (4-bit bitsandbytes weights) and this machine has "
            f"{device.name}; plan again with --gpu cpu (or --method lora), or run on a CUDA machine"
        )
