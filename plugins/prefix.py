"""Built-in method `prefix`: trained key/value prefixes in every layer (peft PrefixTuningConfig).

The prefix lengthens each layer's keys and values, not the input sequence.
Causal LMs only: see `CLASSIFICATION_REFUSED`. Registered through the entry
point `advisor.plugins.prefix`.
"""

from typing import Any, Optional

from advisor import Footprint, hookimpl
from advisor.architecture import MLA, Architecture
from advisor.errors import UserError
from advisor.methods import Head

from ._peft_common import SoftPrompt, SoftPromptHyperparameters

#: peft 0.21's PeftModelForSequenceClassification passes the prefix only when the model's forward (or its
#: backbone's) has a parameter named `past_key_values`; transformers 5 renamed it `cache` in every model
#: (a deprecated alias remains until 5.40), so each classification forward raises "Model does not support
#: past key values", in training and in plain-peft inference alike. The causal-LM path passes the prefix
#: by keyword and works.
CLASSIFICATION_REFUSED = (
    "prefix tuning cannot train a classification head with peft 0.21 on transformers 5 (peft looks for a "
    "`past_key_values` argument the models renamed `cache`, so every forward fails); use prompt_tuning or lora"
)


class PrefixTuning(SoftPrompt):
    peft_config = "PrefixTuningConfig"

    def unavailable(self, arch: Architecture, head: Head) -> Optional[str]:
        return CLASSIFICATION_REFUSED if head == "classification" else None

    def build(self, model: Any, hp: SoftPromptHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        if task_type == "SEQ_CLS":  # a hand-made plan: the planner never gives one
            raise UserError(CLASSIFICATION_REFUSED)
        return super().build(model, hp, task_type)

    def footprint(self, arch: Architecture, hp: SoftPromptHyperparameters) -> Footprint:
        if arch.family in MLA:
            raise UserError(
                f"prefix tuning cannot extend a {arch.family} model's keys and values: latent attention (MLA) "
                "does not keep per-head keys/values of one width"
            )
        kv_dim = arch.kv_heads * arch.dim_per_head
        params = hp.num_virtual_tokens * arch.num_layers * 2 * kv_dim
        return Footprint(
            trainable_params=params,
            added_params=params,
            virtual_tokens=hp.num_virtual_tokens,
            virtual_tokens_in="kv",
        )


METHOD = PrefixTuning(
    name="prefix",
    description="Prefix tuning: trains key/value prefixes for every layer; tiny per task, cannot be merged",
    family="soft-prompt",
    mergeable=False,
    capacity=2,
    learning_rate=(3e-3, 3e-2),
    source="003_483fda984e781d7e.txt §2.4 Soft Prompting and Prefix-Tuning; "
    "002_cb6d472d11844b9e.txt Prefix Tuning / Soft Prompts; learning rates from the peft docs",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
