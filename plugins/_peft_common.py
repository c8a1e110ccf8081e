"""Model plumbing the built-in method plugins share.

Which layer linears a `target_modules` setting selects (in `footprint`, pure
Python over `advisor.architecture`); for `build`, how to find a loaded
model's transformer layers and its classification head; and the soft-prompt
settings prefix and prompt tuning share. peft is imported inside the
functions that touch a real model.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Union

from pydantic import Field

from advisor.architecture import Architecture, LinearSpec
from advisor.errors import UserError
from advisor.methods import Method, MethodHyperparameters

#: Attribute names of the classification heads peft keeps trainable for SEQ_CLS (PeftModelForSequenceClassification).
CLASSIFIER_HEADS = ("classifier", "score")
#: A parameter or module inside transformer layer N: gpt2 `h.N.`, llama/qwen2/mistral `layers.N.`, bert `layer.N.`.
LAYER_PATH = r"(?:^|.*\.)(?:h|layers|layer)\.(\d+)\."
TASK_TYPES = ("CAUSAL_LM", "SEQ_CLS")


def adapted_linears(arch: Architecture, target_modules: Union[str, list[str]]) -> list[LinearSpec]:
    """The layer linears (of one layer) that `target_modules` selects; unknown names are a UserError."""
    linears = arch.layer_linears()
    if target_modules == "all-linear":
        return linears
    known = sorted({linear.name for linear in linears})
    for name in target_modules:
        if name not in known:
            raise UserError(
                f"unknown target module '{name}' for a {arch.family} model; known: {', '.join(known)}"
            )
    return [linear for linear in linears if linear.name in target_modules]


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
    names = sorted({linear.name for linear in adapted_linears(arch, target_modules)})
    return LAYER_PATH + r"(?:.*\.)?(?:" + "|".join(re.escape(name) for name in names) + ")"


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
