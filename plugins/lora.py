"""Built-in method `lora`, and the LoRA family's building blocks (peft LoraConfig).

LoRA trains low-rank updates B·A of the transformer layers' linears with the
base frozen. Variants subclass `LoRA` and set `peft_options` (extra
LoraConfig arguments): dora.py (`use_dora`), qlora.py (4-bit base), and the
third-party rsLoRA example (always `use_rslora`; lora itself carries it as a
hyperparameter the planner turns on at high ranks). Registered through the entry point
`advisor.plugins.lora`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Union

from pydantic import Field, field_validator

from advisor import Footprint, Method, MethodHyperparameters, hookimpl
from advisor.architecture import Architecture
from advisor.errors import UserError

from ._peft_common import (
    adapted_linears, adapted_params, architecture_of, expert_lora_params, expert_targets, layer_targets_regex,
    peft_task_type,
)


class LoraHyperparameters(MethodHyperparameters):
    """LoRA's settings (peft LoraConfig): rank, scaling, dropout and the adapted linears."""

    r: int = Field(16, ge=1, le=1024, description="rank of the update matrices A (r x in) and B (out x r)")
    alpha: float = Field(32, gt=0, le=4096, description="scaling numerator: the update is scaled by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter's input")
    use_rslora: bool = Field(
        False, description="rank-stabilised scaling (peft use_rslora): the update is scaled by alpha / sqrt(r), "
        "so high ranks keep learning (Kalajdzievski 2023)")
    target_modules: Union[Literal["all-linear"], list[str]] = Field(
        "all-linear",
        description="'all-linear' (every linear of every transformer layer, not the output head) "
        "or the layer linears' names, e.g. ['q_proj', 'v_proj']",
    )

    @field_validator("target_modules")
    @classmethod
    def _names_listed_once(cls, value: Union[str, list[str]]) -> Union[str, list[str]]:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("list each module name once (at least one), or use 'all-linear'")
        return value


class LoRA(Method):
    """LoRA and its variants; a variant changes `peft_options` and, if it adds parameters, `footprint`."""

    Hyperparameters = LoraHyperparameters
    #: Extra peft LoraConfig arguments a variant sets (e.g. {"use_dora": True}).
    peft_options: ClassVar[dict[str, Any]] = {}

    def footprint(self, arch: Architecture, hp: LoraHyperparameters) -> Footprint:
        names = list(dict.fromkeys(linear.name for linear in adapted_linears(arch, hp.target_modules)))
        names, experts = expert_targets(arch, names)
        magnitude = bool(self.peft_options.get("use_dora"))
        if experts and magnitude:
            raise UserError(f"DoRA cannot adapt a {arch.family} model's experts (3D parameters); target other modules")
        if experts and hp.dropout:
            raise UserError(
                f"peft adapts a {arch.family} model's experts (named by gate_proj/up_proj/down_proj) only "
                "without dropout: set dropout=0, or target the attention linears only"
            )
        # A is r x in, B is out x r; DoRA adds a magnitude per output feature.
        params = adapted_params(
            arch, names, lambda linear: hp.r * (linear.in_features + linear.out_features)
            + (linear.out_features if magnitude else 0),
        ) + expert_lora_params(arch, experts, hp.r)
        return Footprint(
            trainable_params=params,
            added_params=params,
            adapted_linears=names,
            adapted_experts=experts,
            adapter_rank=hp.r,
            adapter_kind="dora" if magnitude else "lora",
            adapter_dropout=hp.dropout,
        )

    def build(self, model: Any, hp: LoraHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=hp.r,
            lora_alpha=hp.alpha,
            lora_dropout=hp.dropout,
            target_modules=layer_targets_regex(architecture_of(model), hp.target_modules),
            task_type=peft_task_type(task_type),
            **{"use_rslora": hp.use_rslora, **self.peft_options},
        )
        return get_peft_model(model, config)


METHOD = LoRA(
    name="lora",
    description="LoRA: trains low-rank updates of the linear layers; merges into the weights after training",
    family="reparameterisation",
    mergeable=True,
    capacity=3,
    learning_rate=(1e-4, 3e-4),
    source="000_df4a6b7376d2b11b.txt §3 LoRA: The Most Popular PEFT Method; 003_483fda984e781d7e.txt §2.3.1",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
