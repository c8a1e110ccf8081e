"""Built-in method `dora`: weight-decomposed LoRA (peft LoraConfig(use_dora=True)).

DoRA splits each adapted weight into a direction (updated by LoRA) and a
trainable magnitude vector (one value per output feature, counted by
`LoRA.footprint`). Registered through the entry point `advisor.plugins.dora`.
"""

from typing import Any, ClassVar

from advisor import hookimpl

from .lora import LoRA


class DoRA(LoRA):
    peft_options: ClassVar[dict[str, Any]] = {"use_dora": True}
    experts_left_frozen: ClassVar[str] = ("DoRA cannot adapt 3D expert weights: peft's ParamWrapper has no "
                                          "magnitude; the lora method adapts them")


METHOD = DoRA(
    name="dora",
    description="DoRA: LoRA on the weight's direction plus a trained magnitude; mergeable, slower steps than LoRA",
    family="reparameterisation",
    mergeable=True,
    capacity=3,
    learning_rate=(1e-4, 3e-4),
    source="Liu et al. 2024, DoRA (arXiv:2402.09353), peft LoraConfig(use_dora=True); "
    "builds on 000_df4a6b7376d2b11b.txt §3 LoRA",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
