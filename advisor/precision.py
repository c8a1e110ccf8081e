"""Precision in one place: the plan's precision and the device's abilities -> every dtype a run uses.

The estimator prices these dtypes, the backend loads and trains with them,
the preflight compares the two, the accelerate config names their autocast and
QLoRA dequantises to their compute dtype. Nothing else decides a dtype.

| plan precision | CUDA with bf16              | CUDA without bf16 (T4, V100) | no CUDA (CPU, MPS) |
|----------------|-----------------------------|------------------------------|--------------------|
| bf16           | bf16 weights, bf16 autocast | fp32 weights, fp16 autocast  | fp32               |
| mixed          | fp32 weights, bf16 autocast | fp32 weights, fp16 autocast  | fp32               |
| fp16           | fp32 weights, fp16 autocast | fp32 weights, fp16 autocast  | fp32               |
| fp32           | fp32                        | fp32                         | fp32               |

fp16 weights are never trained directly: torch's GradScaler refuses fp16
gradients ("Attempting to unscale FP16 gradients"), so fp16 always means fp32
master weights under fp16 autocast, and the estimator prices it that way.
Gradients and AdamW states take the dtype of the weights they belong to
(torch's AdamW keeps its states in the parameter dtype). A device without
bf16 never gets bf16 anywhere, QLoRA's compute dtype included.

Nothing trains in fp8: the table has no fp8 row. On a card with fp8 tensor
cores (knowledge/gpus.toml `fp8`) the plan says so (rule training.fp8-not-used);
where bitsandbytes does not run (`bitsandbytes`), QLoRA is excluded (rule
method.needs-bitsandbytes).
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict

TorchDtype = Literal["float32", "bfloat16", "float16"]
#: The estimator's recipes (calibration/README.md): everything bf16; fp32 master + 16-bit autocast; fp32.
Recipe = Literal["bf16", "mixed", "fp32"]


class Dtypes(BaseModel):
    """The dtypes one run uses on one device."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: Literal["float32", "bfloat16"]
    autocast: Optional[Literal["bf16", "fp16"]] = None
    compute: TorchDtype = "float32"

    @property
    def gradients(self) -> str:
        return self.weights

    @property
    def optimizer_states(self) -> str:
        return self.weights

    @property
    def recipe(self) -> Recipe:
        """What the estimator prices: 16-bit weights, fp32 weights with autocast, or plain fp32."""
        if self.weights == "bfloat16":
            return "bf16"
        return "mixed" if self.autocast else "fp32"

    @property
    def label(self) -> str:
        if self.weights == "bfloat16":
            return "bf16"
        return f"{self.autocast} mixed" if self.autocast else "fp32"

    def trainer_flags(self) -> dict[str, bool]:
        """transformers TrainingArguments' bf16/fp16 switches."""
        return {"bf16": self.autocast == "bf16", "fp16": self.autocast == "fp16"}


def resolve_dtypes(precision: str, *, cuda: bool, bf16: bool) -> Dtypes:
    """The table above: `precision` is the plan's (bf16, mixed, fp16, fp32); `bf16` whether the device has it."""
    if not cuda or precision == "fp32":
        return Dtypes(weights="float32")
    if bf16 and precision == "bf16":
        return Dtypes(weights="bfloat16", autocast="bf16", compute="bfloat16")
    if bf16 and precision == "mixed":
        return Dtypes(weights="float32", autocast="bf16", compute="bfloat16")
    return Dtypes(weights="float32", autocast="fp16", compute="float16")
