"""Built-in method `full`: every parameter of the base model is trained.

Registered through the entry point `advisor.plugins.full`, like any third-party plugin.
"""

from typing import Any

from advisor import Footprint, Method, MethodHyperparameters, hookimpl
from advisor.architecture import Architecture

from ._peft_common import check_task_type


class FullHyperparameters(MethodHyperparameters):
    """Full fine-tuning has no settings of its own (learning rate and schedule live in the training plan)."""


class FullFineTuning(Method):
    Hyperparameters = FullHyperparameters

    def footprint(self, arch: Architecture, hp: MethodHyperparameters) -> Footprint:
        return Footprint(trainable_params=arch.total_params())

    def build(self, model: Any, hp: MethodHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        check_task_type(task_type)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model


METHOD = FullFineTuning(
    name="full",
    description="Full fine-tuning: every weight is updated (most capacity, most memory, a full copy per task)",
    family="full",
    mergeable=True,
    capacity=4,
    learning_rate=(1e-5, 5e-5),
    source="000_df4a6b7376d2b11b.txt §1 Full Fine-Tuning; 003_483fda984e781d7e.txt §2.1",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
