"""Precision in one place: the plan's precision and the device's abilities -> every dtype a run uses.

The estimator prices these dtypes, the backend loads and trains with them,
the preflight compares the two, the accelerate config names their autocast and
QLoRA dequantises to their compute dtype. Nothing else decides a dtype.

| plan precision | CUDA with bf16                 | CUDA without bf16 (T4, V100)   | no CUDA (CPU, MPS) |
|----------------|--------------------------------|--------------------------------|--------------------|
| bf16           | bf16 weights, bf16 autocast    | 16-bit* weights, fp16 autocast | fp32               |
| mixed          | fp32 weights, bf16 autocast    | fp32 weights, fp16 autocast    | fp32               |
| fp16           | 16-bit* weights, fp16 autocast | 16-bit* weights, fp16 autocast | fp32               |
| fp32           | fp32                           | fp32                           | fp32               |

* fp16 weights where base weights stay frozen (LoRA, bottleneck adapters,
prompts, IA3: the whole base; freeze: all but its top layers; QLoRA's
unquantised rest loads in fp16 and prepare_model_for_kbit_training upcasts it
to fp32), fp32 master weights where every base weight trains (full): a weight
that trains is never fp16, as torch's GradScaler, which fp16 autocast needs,
refuses fp16 gradients ("Attempting to unscale FP16 gradients",
torch/amp/grad_scaler.py). A frozen weight has no gradient, so an fp16 frozen
base under fp16 autocast is what peft on a T4 runs: peft keeps its adapters in
fp32 (get_peft_model's autocast_adapter_dtype), and the backend casts anything
else trainable (a new classification head, bottleneck adapters, the layers
freeze trains) to fp32 after `build`. The estimator prices that run as its
16-bit recipe with each group in its own dtype: 2 bytes per frozen base weight,
16-bit activations, and what trains in fp32 with fp32 gradients and AdamW
states (memory.Shape.trained_base_fp32 for trained base weights).
Gradients and AdamW states take the dtype of the weights they belong to
(torch's AdamW keeps its states in the parameter dtype). A device without
bf16 never gets bf16 anywhere, QLoRA's compute dtype included.

Nothing trains in fp8: the table has no fp8 row. On a card with fp8 tensor
cores (knowledge/gpus.toml `fp8`) the plan says so (rule training.fp8-not-used);
where bitsandbytes does not run (`bitsandbytes`), QLoRA is excluded (rule
method.needs-bitsandbytes).
"""

from typing import Literal, NamedTuple, Optional

TorchDtype = Literal["float32", "bfloat16", "float16"]
#: The estimator's recipes (calibration/README.md): 16-bit weights and activations ("bf16": bf16, or fp16 for a
#: frozen base); fp32 master + 16-bit autocast; fp32.
Recipe = Literal["bf16", "mixed", "fp32"]


class Dtypes(NamedTuple):
    """The dtypes one run uses on one device (chosen here from the catalog's flags: a NamedTuple)."""

    weights: TorchDtype  # the base model's from_pretrained dtype; float16 only for frozen weights (what trains: fp32)
    autocast: Optional[Literal["bf16", "fp16"]] = None
    compute: TorchDtype = "float32"

    @property
    def gradients(self) -> str:
        """The dtype of the trained weights' gradients: an fp16 base is frozen, what trains of it is fp32."""
        return "float32" if self.weights == "float16" else self.weights

    @property
    def optimizer_states(self) -> str:
        return self.gradients

    @property
    def recipe(self) -> Recipe:
        """What the estimator prices: 16-bit weights, fp32 weights with autocast, or plain fp32."""
        if self.weights in ("bfloat16", "float16"):
            return "bf16"
        return "mixed" if self.autocast else "fp32"

    @property
    def label(self) -> str:
        if self.weights == "bfloat16":
            return "bf16"
        if self.weights == "float16":
            return "fp16 frozen base, fp16 mixed"
        return f"{self.autocast} mixed" if self.autocast else "fp32"

    def trainer_flags(self) -> dict[str, bool]:
        """transformers TrainingArguments' bf16/fp16 switches."""
        return {"bf16": self.autocast == "bf16", "fp16": self.autocast == "fp16"}


def resolve_dtypes(precision: str, *, cuda: bool, bf16: bool, frozen_base: bool) -> Dtypes:
    """The table above: `precision` is the plan's (bf16, mixed, fp16, fp32); `bf16` whether the device has it;
    `frozen_base` whether base weights stay frozen under the method (`Footprint.freezes_base_weights`)."""
    if not cuda or precision == "fp32":
        return Dtypes(weights="float32")
    if bf16 and precision == "bf16":
        return Dtypes(weights="bfloat16", autocast="bf16", compute="bfloat16")
    if bf16 and precision == "mixed":
        return Dtypes(weights="float32", autocast="bf16", compute="bfloat16")
    # fp16 autocast. "mixed" asks for fp32 weights; bf16 and fp16 plans ask for 16-bit ones, fp16 only if frozen.
    half = frozen_base and precision != "mixed"
    return Dtypes(weights="float16" if half else "float32", autocast="fp16", compute="float16")
