"""Built-in method `dpo`: Direct Preference Optimization on prompt/chosen/rejected pairs (TRL's DPOTrainer).

The seeds' alignment pipeline is SFT on demonstrations, then preference
optimisation (002 §Advanced Topics > RLHF: "Optimize policy with PPO/DPO").
DPO (Rafailov et al. 2023, arXiv:2305.18290) needs no reward model: it
raises the policy's log-probability margin of the chosen answer over the
rejected one, relative to a frozen reference.

- LoRA by default: the adapter trains; TRL scores the reference with a frozen
  copy of the adapter as initialised (zero update), i.e. the base model. Every
  step runs chosen and rejected: two sequences per pair.
- `full=True`: every weight trains against a second, frozen copy of the model.

TRL's DPOTrainer tokenises the pairs itself (the chat template for message
lists), computes the loss and logs reward margins and accuracies. A third
party adds ORPO or KTO the same way: a Method with objective "preference"
whose `preference_trainer` names its TRL trainer.
"""

from typing import Any, Literal

from pydantic import Field

from advisor import Footprint, hookimpl
from advisor.architecture import Architecture

from ._peft_common import check_task_type
from .lora import LoRA, LoraHyperparameters


class DpoHyperparameters(LoraHyperparameters):
    beta: float = Field(0.1, gt=0, le=10, description="strength of the pull toward the reference model (DPO's beta)")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = Field(
        "sigmoid", description="TRL DPOConfig.loss_type: sigmoid is the DPO paper's loss"
    )
    full: bool = Field(False, description="train every weight against a frozen copy instead of a LoRA adapter")


class DPO(LoRA):
    Hyperparameters = DpoHyperparameters

    def footprint(self, arch: Architecture, hp: DpoHyperparameters) -> Footprint:
        if hp.full:
            trained = Footprint(trainable_params=arch.total_params(), reference_copy=True)
        else:
            trained = super().footprint(arch, hp)
        return trained.model_copy(update={"sequences_per_example": 2})

    def build(self, model: Any, hp: DpoHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        check_task_type(task_type)
        if not hp.full:
            return super().build(model, hp, task_type)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model

    def preference_trainer(self, hp: DpoHyperparameters) -> tuple[type, type, dict[str, Any]]:
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer, DPOConfig, {"beta": hp.beta, "loss_type": [hp.loss_type]}


METHOD = DPO(
    name="dpo",
    description="DPO: learns from chosen/rejected answer pairs (a LoRA adapter by default); after SFT",
    family="reparameterisation",
    mergeable=True,
    capacity=3,
    learning_rate=(5e-6, 5e-5),
    objective="preference",
    source="002_cb6d472d11844b9e.txt §Advanced Topics > RLHF (Reinforcement Learning from Human Feedback); "
    "Rafailov et al. 2023, DPO (arXiv:2305.18290); TRL DPOTrainer",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
