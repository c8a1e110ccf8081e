"""Model plumbing the built-in method plugins share.

Which layer linears a `target_modules` setting selects (in `footprint`, pure
Python over `advisor.architecture`); for `build`, how to find a loaded
model's transformer layers and its classification head; and the soft-prompt
settings prefix and prompt tuning share. peft is imported inside the
functions that touch a real model.
"""

import re
from typing import Any, ClassVar, Union

from pydantic import Field

from advisor.architecture import Architecture, LinearSpec
from advisor.errors import UserError
from advisor.methods import Method, MethodHyperparameters

#: Attribute names of the classification heads peft keeps trainable for SEQ_CLS (PeftModelForSequenceClassification).
CLASSIFIER_HEADS = ("classifier", "score")
#: A parameter or module inside transformer layer N: gpt2 `h.N.`, llama/qwen2/mistral `layers.N.`, bert `layer.N.`;
#: not a multimodal checkpoint's vision tower (Gemma 3), whose layers are no part of the language model's.
LAYER_PATH = r"(?!.*vision_tower\.)(?:^|.*\.)(?:h|layers|layer)\.(\d+)\."
TASK_TYPES = ("CAUSAL_LM", "SEQ_CLS")


def adapted_linears(arch: Architecture, target_modules: Union[str, list[str]]) -> list[LinearSpec]:
    """The layer linears (of one layer) that `target_modules` selects; unknown names are a UserError.

    Only nn.Linear/Conv1D modules: a MoE model's router and experts are plain
    parameters in transformers 5, which peft's target_modules does not see, so
    naming them here is refused (LoRA adapts the experts through
    `target_parameters`: see `EXPERT_WEIGHTS`).
    """
    linears = [linear for _, group in arch.layer_groups() for linear in group if linear.is_module]
    if target_modules == "all-linear":
        return _unique(linears)
    known = sorted({linear.name for linear in linears})
    parameters = {linear.name for _, group in arch.layer_groups() for linear in group if not linear.is_module}
    for name in target_modules:
        if name in parameters - set(known):
            raise UserError(
                f"target module '{name}' of a {arch.family} model is the router's or the experts' weight, a "
                f"parameter rather than a linear module; linear modules: {', '.join(known)}"
                + (" (LoRA adapts the experts with expert_r)" if name in EXPERT_WEIGHTS else "")
            )
        if name not in known:
            raise UserError(
                f"unknown target module '{name}' for a {arch.family} model; known: {', '.join(known)}"
            )
    return _unique(linear for linear in linears if linear.name in target_modules)


def _unique(linears) -> list[LinearSpec]:
    """Each LinearSpec once (the dense and the sparse layers of a MoE model share their attention linears)."""
    return list(dict.fromkeys(linears))


def adapted_params(arch: Architecture, names: list[str], per_linear) -> int:
    """`per_linear(linear)` summed over every layer's linear modules called one of `names`."""
    return sum(
        count * sum(per_linear(linear) for linear in group if linear.is_module and linear.name in names)
        for count, group in arch.layer_groups()
    )


#: A MoE layer's routed-expert weights (3D parameters, every expert in one tensor). peft's ParamWrapper adapts them
#: when a LoraConfig names them in `target_parameters` (peft docs, developer_guides/lora.md "Targeting nn.Parameter
#: directly"); for mixtral, qwen3_moe, gpt_oss and deepseek_v2/v3 tests/test_review_moe.py trains such adapters,
#: saves them, reloads them with plain peft and generates. The router is a weight too, and stays frozen.
EXPERT_WEIGHTS = ("gate_up_proj", "down_proj")
#: Families whose MoE experts peft (0.21, utils/transformers_weight_conversion.py) re-targets when a LoRA config
#: names the transformers-4 expert projections: gate_proj/up_proj/down_proj become `target_parameters` on the
#: fused 3D experts (gate_up_proj with rank 2r), and those names stop selecting linear modules (dense/shared MLPs).
PEFT_EXPERT_CONVERSION = ("qwen3_moe", "deepseek_v2", "deepseek_v3")
CONVERTED_NAMES = {"gate_proj": "gate_up_proj", "up_proj": "gate_up_proj", "down_proj": "down_proj"}


def expert_targets(arch: Architecture, names: list[str], rank: int) -> tuple[list[str], dict[str, int]]:
    """peft's view of a LoRA target list: (linear module names, {expert weight it converts the rest to: rank})."""
    if arch.family not in PEFT_EXPERT_CONVERSION or not set(names) & set(CONVERTED_NAMES):
        return names, {}
    fused = {"gate_proj", "up_proj"} & set(names)
    if len(fused) == 1:
        raise UserError(
            f"a {arch.family} model's experts fuse gate_proj and up_proj into one weight: "
            "target both or neither"
        )
    experts = {CONVERTED_NAMES[name]: rank * (2 if name != "down_proj" else 1) for name in names
               if name in CONVERTED_NAMES}
    return [name for name in names if name not in CONVERTED_NAMES], experts


def default_expert_rank(arch: Architecture, rank: int) -> int:
    """The rank of each expert's update under 'all-linear': r // num_experts, at least 1.

    peft's guidance for LoRA on MoE experts (docs, developer_guides/lora.md "MoE expert
    parameters and vLLM", after Schulman et al. 2025, LoRA Without Regret): it keeps
    the experts' adapters near a dense layer's parameter budget. At rank r on each of
    Qwen3-30B-A3B's 128 experts they would hold 0.6B parameters, 47x the attention's.
    """
    return max(1, rank // arch.num_experts)


def expert_lora_params(arch: Architecture, experts: dict[str, int]) -> int:
    """peft's ParamWrapper on a 3D expert weight at rank k: A is (k x experts) x in, B is out x (k x experts)."""
    return sum(
        count * sum(experts[linear.name] * linear.copies * (linear.in_features + linear.out_features)
                    for linear in group if linear.role == "expert" and linear.name in experts)
        for count, group in arch.layer_groups()
    )


def expert_share(arch: Architecture) -> float:
    """The routed experts' share of the model's parameters."""
    experts = sum(count * sum(linear.params for linear in group if linear.role == "expert")
                  for count, group in arch.layer_groups())
    return experts / arch.total_params()


def check_task_type(task_type: str) -> None:
    if task_type not in TASK_TYPES:
        raise UserError(f"unknown task type '{task_type}'; known: {', '.join(TASK_TYPES)}")


def architecture_of(model: Any) -> Architecture:
    """The Architecture of a loaded transformers model, read from its config."""
    try:
        return Architecture.from_hf_config(model.config.to_dict())
    except (ValueError, KeyError) as error:
        raise UserError(f"cannot read the model's architecture: {error}") from error


def layer_targets_regex(arch: Architecture, target_modules: Union[str, list[str]]) -> str:
    """A peft target_modules regex selecting the chosen linears inside the transformer layers only.

    peft's 'all-linear' also adapts linears outside the layers (BERT's pooler),
    which `footprint` does not count; anchoring on the layer path keeps the two equal.
    """
    return names_regex([linear.name for linear in adapted_linears(arch, target_modules)])


def names_regex(names: list[str]) -> str:
    """A peft target_modules regex for the linears called one of `names` inside the transformer layers."""
    return LAYER_PATH + r"(?:.*\.)?(?:" + "|".join(re.escape(name) for name in sorted(set(names))) + ")"


def layer_index(name: str) -> int | None:
    """The transformer layer a parameter or module name lives in, or None outside the layers."""
    match = re.match(LAYER_PATH, name)
    return int(match.group(1)) if match else None


def is_classifier_head(name: str) -> bool:
    """True for a parameter of the SEQ_CLS head (`classifier.*`, `score.*`)."""
    return name.split(".")[0] in CLASSIFIER_HEADS


def peft_task_type(task_type: str) -> Any:
    check_task_type(task_type)
    from peft import TaskType

    return TaskType[task_type]


class SoftPromptHyperparameters(MethodHyperparameters):
    num_virtual_tokens: int = Field(20, ge=1, le=1024, description="trained virtual tokens prepended to every input")


class SoftPrompt(Method):
    """Prefix and prompt tuning: the same settings and build, differing in the peft config and footprint."""

    Hyperparameters = SoftPromptHyperparameters
    #: The peft config class that builds this method (PrefixTuningConfig or PromptTuningConfig).
    peft_config: ClassVar[str] = ""

    def build(self, model: Any, hp: SoftPromptHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        import peft

        config_class = getattr(peft, self.peft_config)
        config = config_class(num_virtual_tokens=hp.num_virtual_tokens, task_type=peft_task_type(task_type))
        return peft.get_peft_model(model, config)
