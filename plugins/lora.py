"""Built-in method `lora`, and the LoRA family's building blocks (peft LoraConfig).

LoRA trains low-rank updates B·A of the transformer layers' linears with the
base frozen; on a mixture-of-experts model 'all-linear' adapts the routed
experts' 3D weights too (peft `target_parameters`), the router stays frozen.
Variants subclass `LoRA` and set `peft_options` (extra LoraConfig arguments):
dora.py (`use_dora`), qlora.py (4-bit base), and the third-party rsLoRA example
(always `use_rslora`; lora itself carries it as a hyperparameter the planner
turns on at high ranks). Registered through the entry point
`advisor.plugins.lora`.
"""

import re
import warnings
from typing import Any, ClassVar, Literal, NamedTuple, Optional, Union

from pydantic import Field, field_validator

from advisor import Footprint, Method, MethodHyperparameters, hookimpl
from advisor.architecture import Architecture
from advisor.errors import UserError

from ._peft_common import (
    EXPERT_WEIGHTS, PEFT_EXPERT_CONVERSION, CONVERTED_NAMES, adapted_linears, adapted_params, architecture_of,
    default_expert_rank, expert_lora_params, expert_share, expert_targets, names_regex, peft_task_type,
)


class LoraHyperparameters(MethodHyperparameters):
    """LoRA's settings (peft LoraConfig): rank, scaling, dropout and the adapted linears."""

    r: int = Field(16, ge=1, le=1024, description="rank of the update matrices A (r x in) and B (out x r)")
    alpha: float = Field(32, gt=0, le=4096, description="scaling numerator: the update is scaled by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the linear adapters' input (a mixture-of-experts "
                           "model's expert adapters have none: peft cannot drop out a 3D weight's input)")
    use_rslora: bool = Field(
        False, description="rank-stabilised scaling (peft use_rslora): the update is scaled by alpha / sqrt(r), "
        "so high ranks keep learning (Kalajdzievski 2023)")
    target_modules: Union[Literal["all-linear"], list[str]] = Field(
        "all-linear",
        description="'all-linear' (every linear of every transformer layer, not the output head; on a "
        "mixture-of-experts model the experts too, at expert_r) or the layer linears' names, e.g. ['q_proj', 'v_proj']",
    )
    expert_r: Optional[int] = Field(
        None, ge=0, le=1024, description="mixture-of-experts models: rank of each expert's update (alpha stays "
        "alpha); 0 keeps the experts frozen; default with 'all-linear' max(1, r // experts) (peft's MoE "
        "guidance), with a list of linears 0",
    )

    @field_validator("target_modules")
    @classmethod
    def _names_listed_once(cls, value: Union[str, list[str]]) -> Union[str, list[str]]:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("list each module name once (at least one), or use 'all-linear'")
        return value


class LoraTargets(NamedTuple):
    """What a LoRA setting adapts on one architecture, as peft will build it (worked out here, nothing to
    validate: a NamedTuple)."""

    linears: list[str]  # layer linears (LinearSpec.name) with an adapter
    peft_names: list[str]  # the names peft's target_modules gets (converted expert names too)
    experts: dict[str, int]  # MoE expert weight -> the rank of each expert's update
    converted: bool  # the experts are named the transformers-4 way; peft's conversion ranks them
    scope: str  # what is adapted on a MoE model, in words ('' on a dense model)


class LoRA(Method):
    """LoRA and its variants; a variant changes `peft_options` and, if it adds parameters, `footprint`."""

    Hyperparameters = LoraHyperparameters
    #: Extra peft LoraConfig arguments a variant sets (e.g. {"use_dora": True}).
    peft_options: ClassVar[dict[str, Any]] = {}
    #: Why 'all-linear' leaves a MoE model's experts frozen under this variant, and what adapts them ('': it
    #: adapts them at expert_r).
    experts_left_frozen: ClassVar[str] = ""

    def footprint(self, arch: Architecture, hp: LoraHyperparameters) -> Footprint:
        targets = self.targets(arch, hp)
        magnitude = bool(self.peft_options.get("use_dora"))
        # A is r x in, B is out x r; DoRA adds a magnitude per output feature.
        params = adapted_params(
            arch, targets.linears, lambda linear: hp.r * (linear.in_features + linear.out_features)
            + (linear.out_features if magnitude else 0),
        ) + expert_lora_params(arch, targets.experts)
        return Footprint(
            trainable_params=params,
            added_params=params,
            adapted_linears=targets.linears,
            adapted_experts=targets.experts,
            adapter_rank=hp.r,
            adapter_kind="dora" if magnitude else "lora",
            adapter_dropout=hp.dropout,
            scope=targets.scope,
        )

    def targets(self, arch: Architecture, hp: LoraHyperparameters) -> LoraTargets:
        """The linears and expert weights `hp` adapts on `arch`, and what that means in words."""
        all_linear = hp.target_modules == "all-linear"
        names = list(dict.fromkeys(linear.name for linear in adapted_linears(arch, hp.target_modules)))
        if not arch.is_moe:
            if hp.expert_r:
                raise UserError(f"expert_r applies to mixture-of-experts models; a {arch.family} model has no experts")
            return LoraTargets(linears=names, peft_names=names, experts={}, converted=False, scope="")
        # peft turns these dense/shared MLP linears' names into the experts (rank 2r), so they never adapt as linears.
        mlps_left_out = bool(set(names) & set(CONVERTED_NAMES)) and arch.family in PEFT_EXPERT_CONVERSION
        if all_linear and arch.family in PEFT_EXPERT_CONVERSION:
            names = [name for name in names if name not in CONVERTED_NAMES]
            linears, converted = names, {}
        else:
            linears, converted = expert_targets(arch, names, hp.r)
        expert_rank, frozen_because = self._expert_rank(arch, hp, all_linear)
        if expert_rank and converted:
            raise UserError(f"name gate_proj/up_proj/down_proj (peft converts them to a {arch.family} model's "
                            "experts) or set expert_r, not both")
        experts = converted or {weight: expert_rank for weight in EXPERT_WEIGHTS if expert_rank}
        if experts and self.peft_options.get("use_dora"):
            keep_frozen = "target the attention linears only" if converted else "leave expert_r unset"
            raise UserError(f"DoRA cannot adapt a {arch.family} model's experts (3D parameters): {keep_frozen}")
        return LoraTargets(
            linears=linears, peft_names=names, experts=experts, converted=bool(converted),
            scope=moe_scope(arch, linears, experts, mlps_left_out, frozen_because, hp.dropout),
        )

    def _expert_rank(self, arch: Architecture, hp: LoraHyperparameters, all_linear: bool) -> tuple[int, str]:
        """The rank of each expert's update (0: frozen), and when it is 0, why and what adapts them."""
        if hp.expert_r is not None:
            return hp.expert_r, "expert_r is 0; a rank above 0 adapts them"
        if not all_linear:
            return 0, (f"target_modules names linear modules only; expert_r, or 'all-linear', adapts them at rank "
                       f"{default_expert_rank(arch, hp.r)}")
        if self.experts_left_frozen:
            return 0, self.experts_left_frozen
        return default_expert_rank(arch, hp.r), ""

    def build(self, model: Any, hp: LoraHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        from peft import LoraConfig, get_peft_model

        targets = self.targets(architecture_of(model), hp)
        # Converted names reach the experts through peft's own conversion (and its ranks); the rest by name.
        experts = {} if targets.converted else targets.experts
        config = LoraConfig(
            r=hp.r,
            lora_alpha=hp.alpha,
            # peft's ParamWrapper (the experts' adapters) refuses any dropout: the linears get theirs below.
            lora_dropout=0.0 if targets.experts else hp.dropout,
            target_modules=names_regex(targets.peft_names),
            target_parameters=[f"experts.{weight}" for weight in experts] or None,
            rank_pattern={re.escape(f"experts.{weight}"): rank for weight, rank in experts.items()},
            task_type=peft_task_type(task_type),
            **{"use_rslora": hp.use_rslora, **self.peft_options},
        )
        with warnings.catch_warnings():
            # peft 0.21 checks rank_pattern against target_modules only and calls the experts' keys unmatched,
            # though their ParamWrappers take those ranks (tests/test_review_moe.py reads the adapters' shapes).
            warnings.filterwarnings("ignore", message="The following rank_pattern keys did not match",
                                    category=RuntimeWarning)
            model = get_peft_model(model, config)
        if targets.experts and hp.dropout:
            linear_adapters_drop_out(model, hp.dropout)
        return model


def linear_adapters_drop_out(model: Any, dropout: float) -> None:
    """Dropout on the input of every linear's LoRA adapter, none on the experts' (peft's ParamWrapper).

    peft builds each adapter's dropout from the config's one `lora_dropout`, which its ParamWrapper refuses
    unless 0; its LoRA linears apply `lora_dropout[adapter]` on every forward, so setting that module after the
    build gives the linears the plan's dropout. The saved adapter_config says 0: dropout only matters in training.
    """
    from peft.tuners.lora import LoraLayer, ParamWrapper
    from torch import nn

    for module in model.modules():
        if isinstance(module, LoraLayer) and not isinstance(module, ParamWrapper):
            for adapter in list(module.lora_dropout):
                module.lora_dropout[adapter] = nn.Dropout(p=dropout)


def moe_scope(arch: Architecture, linears: list[str], experts: dict[str, int], mlps_left_out: bool,
              frozen_because: str, dropout: float) -> str:
    """One sentence on what LoRA adapts on a mixture-of-experts model, for the plan's summary."""
    every = f"all {arch.num_experts} experts of every MoE layer"
    left_out = [part for part, present in (("the shared experts", arch.shared_expert_intermediate_size),
                                           ("the dense layers' MLPs", arch.dense_layers)) if mlps_left_out and present]
    if not experts:
        frozen = _listed([f"{every} ({expert_share(arch):.0%} of the weights)", "the router", *left_out])
        return (f"On this mixture-of-experts model only the attention carries adapters: {frozen} stay frozen "
                f"({frozen_because}).")
    ranks = set(experts.values())
    rank = f"rank {min(ranks)} each" if len(ranks) == 1 else ", ".join(f"{w} rank {k}" for w, k in experts.items())
    covered = ("the attention and " if linears else "") + every
    frozen = _listed(["the router", *left_out]) + (" stay" if left_out else " stays")
    no_dropout = ", without dropout: peft allows none on expert weights" if dropout else ""
    return f"On this mixture-of-experts model the adapters cover {covered} ({rank}{no_dropout}); {frozen} frozen."


def _listed(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


METHOD = LoRA(
    name="lora",
    description="LoRA: trains low-rank updates of linear layers; merges into the weights after training",
    family="reparameterisation",
    mergeable=True,
    capacity=3,
    learning_rate=(1e-4, 3e-4),
    source="000_df4a6b7376d2b11b.txt §3 LoRA: The Most Popular PEFT Method; 003_483fda984e781d7e.txt §2.3.1",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
