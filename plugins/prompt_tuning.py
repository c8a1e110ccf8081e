"""Built-in method `prompt_tuning`: trained virtual-token embeddings before the input (peft PromptTuningConfig).

The virtual tokens lengthen the input sequence. Registered through the entry
point `advisor.plugins.prompt_tuning`.
"""

from advisor import Footprint, hookimpl
from advisor.architecture import Architecture

from ._peft_common import SoftPrompt, SoftPromptHyperparameters


class PromptTuning(SoftPrompt):
    peft_config = "PromptTuningConfig"

    def footprint(self, arch: Architecture, hp: SoftPromptHyperparameters) -> Footprint:
        params = hp.num_virtual_tokens * arch.hidden_size
        return Footprint(
            trainable_params=params,
            added_params=params,
            virtual_tokens=hp.num_virtual_tokens,
            virtual_tokens_in="sequence",
        )


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
