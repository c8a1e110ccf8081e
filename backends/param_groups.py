"""Learning rates per parameter group ("new" vs "pretrained"), through the Trainer's own optimizer hook.

The plan gives parameters the run initialises (a classification head,
LoRA/adapter weights, soft prompts) one rate and the trainable weights that
came with the checkpoint a lower one (seed 000 §2: new layers 1e-3..1e-4).
`plan_trainer.PlanTrainer.create_optimizer` builds the optimizer from
`optimizer_groups`; the optimizer class and its kwargs still come from
`TrainingArguments.optim`, weight decay still skips biases and norms, and the
scheduler, checkpointing and resume (optimizer state included) stay the
Trainer's. Each torch param group carries a `name` key, so
`trainer.optimizer.param_groups` shows the plan.
"""

from __future__ import annotations

import re
from typing import Any

from ..models import TrainingHyperparameters

#: What peft adds to a base model's parameter names.
_PEFT_NAME_PARTS = re.compile(r"^base_model\.model\.|\.base_layer(?=\.)|\.modules_to_save\.default(?=\.)|\.original_module(?=\.)")


def canonical_name(name: str) -> str:
    """A parameter's name as in the base checkpoint, with peft's wrapping removed."""
    return _PEFT_NAME_PARTS.sub("", name)


def group_rates(hp: TrainingHyperparameters) -> dict[str, float]:
    """The rate of each group; a group the plan does not name takes `hp.learning_rate`."""
    rates = {"new": hp.learning_rate, "pretrained": hp.learning_rate}
    rates.update({group.name: group.learning_rate for group in hp.param_groups})
    return rates


def group_of(name: str, loaded: set[str]) -> str:
    return "pretrained" if canonical_name(name) in loaded else "new"


def optimizer_groups(
    model: Any, rates: dict[str, float], pretrained: set[str], weight_decay: float, decay_names: set[str],
) -> list[dict[str, Any]]:
    """torch param groups: (new | pretrained) x (decayed | not), each with its rate and a `name`."""
    buckets: dict[tuple[str, bool], list[Any]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            buckets.setdefault((group_of(name, pretrained), name in decay_names), []).append(parameter)
    return [
        {"name": group, "params": params, "lr": rates[group], "weight_decay": weight_decay if decays else 0.0}
        for (group, decays), params in sorted(buckets.items())
    ]
