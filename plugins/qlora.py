"""Built-in method `qlora`: LoRA on a 4-bit NF4 base (bitsandbytes), which needs a CUDA GPU.

The backend loads the base with `load_options()` (a BitsAndBytesConfig), then
`build` prepares it for k-bit training (non-quantised parameters upcast to
fp32, gradient checkpointing on) and adds the LoRA adapters. Registered
through the entry point `advisor.plugins.qlora`.
"""

from typing import Any, ClassVar, Literal, Optional

from pydantic import Field

from advisor import Footprint, hookimpl
from advisor.architecture import Architecture
from advisor.precision import Dtypes
from advisor.errors import UserError

from .lora import LoRA, LoraHyperparameters


class QLoraHyperparameters(LoraHyperparameters):
    double_quant: bool = Field(True, description="also quantise the quantisation constants (saves ~0.4 bit/param)")
    compute_dtype: Optional[Literal["bfloat16", "float16", "float32"]] = Field(
        None, description="dtype the 4-bit weights are dequantised to for each matmul; "
        "default: the run's compute dtype (bf16 where the GPU has it, else fp16)"
    )


class QLoRA(LoRA):
    Hyperparameters = QLoraHyperparameters
    #: bitsandbytes leaves the 3D experts unquantised, and peft's ParamWrapper on them beside a 4-bit base is not
    #: verified here (no CUDA in the test suite); an explicit expert_r still adapts them.
    experts_left_frozen: ClassVar[str] = ("LoRA on the unquantised experts over a 4-bit base is not verified here; "
                                          "expert_r adapts them anyway, or the lora method")

    def footprint(self, arch: Architecture, hp: QLoraHyperparameters) -> Footprint:
        return super().footprint(arch, hp).model_copy(
            update={"quantized_base": True, "upcast_unquantized_fp32": True, "forces_gradient_checkpointing": True}
        )

    def load_options(self, hp: QLoraHyperparameters, dtypes: Dtypes) -> dict[str, Any]:
        import torch
        from accelerate import PartialState
        from transformers import BitsAndBytesConfig

        compute = getattr(torch, hp.compute_dtype or dtypes.compute)
        return {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=hp.double_quant,
                bnb_4bit_compute_dtype=compute,
                # The packed 4-bit weights stored in a float dtype: FSDP shards only floating tensors (peft's
                # "FSDP + QLoRA"; accelerate 1.15 leaves uint8 storage unsharded). The same bytes on one GPU.
                bnb_4bit_quant_storage=compute,
            ),
            # Each process of a launch loads onto its own GPU (its local rank), not every one onto the first.
            "device_map": {"": PartialState().local_process_index},
        }

    def build(self, model: Any, hp: QLoraHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        if not getattr(model, "is_loaded_in_4bit", False):
            raise UserError(
                "qlora needs the base model loaded in 4-bit (from_pretrained with qlora's load_options, "
                "on a CUDA GPU with bitsandbytes); use 'lora' to train an unquantised base"
            )
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
        return super().build(model, hp, task_type)


METHOD = QLoRA(
    name="qlora",
    description="QLoRA: LoRA on a 4-bit quantised base; the least memory of the LoRA family, slower steps, CUDA only",
    family="reparameterisation",
    mergeable=True,
    requires_cuda=True,
    quantized=True,
    capacity=3,
    learning_rate=(1e-4, 3e-4),
    source="000_df4a6b7376d2b11b.txt §3 QLoRA: Extreme Efficiency; 003_483fda984e781d7e.txt §2.3.2",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
