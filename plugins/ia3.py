"""Built-in method `ia3`: (IA)^3, learned vectors that rescale activations (peft IA3Config).

With target_modules "default", peft picks per-architecture modules and marks
the MLP's down projection as feed-forward (its vector scales the input);
`_PEFT_DEFAULTS` mirrors peft's tables so `footprint` counts what `build`
creates (the tests compare them). Registered through the entry point
`advisor.plugins.ia3`.
"""

from typing import Any, Literal, Union

from pydantic import Field, field_validator

from advisor import Footprint, Method, MethodHyperparameters, hookimpl
from advisor.architecture import Architecture
from advisor.errors import UserError

from ._peft_common import adapted_linears, adapted_params, architecture_of, layer_targets_regex, peft_task_type

#: family -> (index in Architecture.layer_linears(), scales the input (feed-forward)) per adapted linear,
#: as peft's TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING / ..._FEEDFORWARD_MODULES_MAPPING select them.
_PEFT_DEFAULTS: dict[str, list[tuple[int, bool]]] = {
    "gpt2": [(0, False), (3, True)],  # c_attn, mlp.c_proj
    "llama": [(1, False), (2, False), (6, True)],  # k_proj, v_proj, down_proj
    "mistral": [(1, False), (2, False), (6, True)],
    "qwen2": [(0, False), (2, False), (6, True)],  # q_proj, v_proj, down_proj
    "bert": [(1, False), (2, False), (3, True), (5, True)],  # key, value, *.output.dense (both)
    "roberta": [(1, False), (2, False), (3, True), (5, True)],
    "qwen3": [(0, False), (2, False), (6, True)],  # q_proj, v_proj, down_proj
    "gemma2": [(0, False), (2, False), (6, True)],
    "gemma3": [(0, False), (2, False), (6, True)],  # text-only checkpoints (peft's table has gemma3_text only)
}


class IA3Hyperparameters(MethodHyperparameters):
    target_modules: Union[Literal["default"], list[str]] = Field(
        "default",
        description="'default' (peft's per-architecture choice) or layer linears' names, whose outputs are rescaled",
    )

    @field_validator("target_modules")
    @classmethod
    def _names_listed_once(cls, value: Union[str, list[str]]) -> Union[str, list[str]]:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("list each module name once (at least one), or use 'default'")
        return value


class IA3(Method):
    Hyperparameters = IA3Hyperparameters

    def footprint(self, arch: Architecture, hp: IA3Hyperparameters) -> Footprint:
        linears = arch.layer_linears()
        if hp.target_modules == "default":
            if arch.family not in _PEFT_DEFAULTS or arch.vision_params:
                raise UserError(
                    f"peft has no default IA3 target modules for a {arch.family}"
                    f"{' multimodal' if arch.vision_params else ''} model; pass target_modules (layer linears' names)"
                )
            scaled = [(linears[index], feedforward) for index, feedforward in _PEFT_DEFAULTS[arch.family]]
            params = arch.num_layers * sum(l.in_features if ff else l.out_features for l, ff in scaled)
            names = [linear.name for linear, _ in scaled]
            input_scaled = [linear.name for linear, ff in scaled if ff]
        else:
            names = [linear.name for linear in adapted_linears(arch, hp.target_modules)]
            params = adapted_params(arch, names, lambda linear: linear.out_features)
            input_scaled = []
        return Footprint(
            trainable_params=params,
            added_params=params,
            adapted_linears=names,
            adapter_kind="ia3",
            input_scaled_linears=input_scaled,
        )

    def build(self, model: Any, hp: IA3Hyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        from peft import IA3Config, get_peft_model

        if hp.target_modules == "default":
            targets = {"target_modules": None, "feedforward_modules": None}
        else:
            regex = layer_targets_regex(architecture_of(model), hp.target_modules)
            targets = {"target_modules": regex, "feedforward_modules": []}
        return get_peft_model(model, IA3Config(task_type=peft_task_type(task_type), **targets))


METHOD = IA3(
    name="ia3",
    description="(IA)^3: learns vectors that rescale keys, values and MLP activations; fewest parameters, mergeable",
    family="additive",
    mergeable=True,
    capacity=1,
    learning_rate=(3e-3, 1e-2),
    source="Liu et al. 2022, (IA)^3 (arXiv:2205.05638), peft IA3Config; "
    "003_483fda984e781d7e.txt §2.2 (PEFT methods freeze the base)",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
