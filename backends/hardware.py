"""Which device a run uses: the plan's wish, bounded by this machine.

`prepared.prepare` asks before loading the model; the CLI asks first of all,
so a plan this machine cannot run (4-bit QLoRA without CUDA) is refused in one
line before anything loads. The dtypes on that device come from
`advisor.precision.resolve_dtypes` (the one table of precisions).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..errors import UserError
from ..extras import require
from ..methods import Method
from ..precision import Dtypes, resolve_dtypes

DeviceKind = Literal["cuda", "mps", "cpu"]


class Device(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: DeviceKind
    name: str
    bf16: bool = False


def detect_device() -> Device:
    import torch

    if torch.cuda.is_available():
        # Native bf16 only: with emulation (the default) a T4 answers True and would train bf16 in software.
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return Device(kind="cuda", name=torch.cuda.get_device_name(0), bf16=native_bf16)
    if torch.backends.mps.is_available():
        return Device(kind="mps", name="Apple MPS")
    return Device(kind="cpu", name="CPU")


def run_dtypes(plan_precision: str, device: Device, frozen_base: bool) -> Dtypes:
    """The dtypes the plan's precision gets on `device` (`frozen_base`: base weights stay frozen)."""
    return resolve_dtypes(plan_precision, cuda=device.kind == "cuda", bf16=device.bf16, frozen_base=frozen_base)


def check_method_runs_here(method: Method, device: Device) -> None:
    """A CUDA-only method (4-bit QLoRA) without CUDA, or without bitsandbytes: one line, exit 2."""
    if method.requires_cuda and device.kind != "cuda":
        raise UserError(
            f"method '{method.name}' needs a CUDA GPU (4-bit bitsandbytes weights) and this machine has "
            f"{device.name}; change plan.json training.method (e.g. to 'lora'), plan again with --gpu cpu, "
            "or run on a CUDA machine"
        )
    if method.quantized:
        require("cuda", f"method '{method.name}' (plan.json training.method)", ("bitsandbytes",))
