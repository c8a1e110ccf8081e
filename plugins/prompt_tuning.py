"""Built-in method `prompt_tuning`: trained virtual-token embeddings before the input (peft PromptTuningConfig).

The virtual tokens lengthen the input sequence. Registered through the entry
point `advisor.plugins.prompt_tuning`.
"""

from __future__ import annotations

from typing import Any

from advisor import Footprint, Method, hookimpl
from advisor.architecture import Architecture

from ._peft_common import SoftPromptHyperparameters, build_soft_prompt


class PromptTuning(Method):
    Hyperparameters = SoftPromptHyperparameters

    def footprint(self, arch: Architecture, hp: SoftPromptHyperparameters) -> Footprint:
        params = hp.num_virtual_tokens * arch.hidden_size
        return Footprint(
            trainable_params=params,
            added_params=params,
            virtual_tokens=hp.num_virtual_tokens,
            virtual_tokens_in="sequence",
        )

    def build(self, model: Any, hp: SoftPromptHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        return build_soft_prompt(model, "PromptTuningConfig", hp, task_type)


METHOD = PromptTuning(
    name="prompt_tuning",
    description="Prompt tuning: trains a few virtual-token embeddings; the fewest parameters, least capacity",
    family="soft-prompt",
    mergeable=False,
    capacity=1,
    learning_rate=(3e-3, 3e-2),
    source="003_483fda984e781d7e.txt §2.4 Soft Prompting and Prefix-Tuning; "
    "002_cb6d472d11844b9e.txt Prefix Tuning / Soft Prompts; learning rates from the peft docs",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
