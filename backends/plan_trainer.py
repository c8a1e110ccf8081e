"""The Trainer the backends run: transformers' own, with three hooks overridden and nothing else.

- `create_optimizer`: one learning rate per parameter group of the plan
  (param_groups.py), the optimizer class still from `TrainingArguments.optim`;
- `_get_train_sampler`: length-grouped batches reseeded per epoch
  (sampling.py), so resuming replays the same batches;
- `save_model`: under FSDP, the checkpoint directory exists in every process
  before the Trainer looks for it (see there).
- `_save_checkpoint` (the StagedCheckpoints mixin): the Trainer's save, into a
  staging folder renamed when complete (checkpoints.py), so a killed save never
  leaves a partial checkpoint.

Training loop, scheduler, evaluation, checkpoint contents and resume are the Trainer's.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from transformers import Trainer

from .checkpoints import StagedCheckpoints
from .param_groups import optimizer_groups
from .sampling import SeededLengthGroupedSampler


class PlanTrainer(StagedCheckpoints, Trainer):
    def __init__(self, *args: Any, group_rates: dict[str, float], pretrained: set[str], **kwargs: Any) -> None:
        self.group_rates = group_rates
        self.pretrained = pretrained
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model: Any = None) -> Any:
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        groups = optimizer_groups(
            opt_model, self.group_rates, self.pretrained, self.args.weight_decay,
            set(self.get_decay_parameter_names(opt_model)),
        )
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = self.train_dataset if train_dataset is None else train_dataset
        lengths = [len(ids) for ids in dataset["input_ids"]]
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return SeededLengthGroupedSampler(batch, lengths, seed=self.args.data_seed or self.args.seed)

    def save_model(self, output_dir: Optional[str] = None, _internal_call: bool = False) -> None:
        # With sharded FSDP checkpoints save_model writes nothing: the checkpoint directory appears only when the
        # shards are written, after the Trainer's barrier-then-os.path.exists that records the best checkpoint.
        # Measured (2 CPU processes, transformers 5.24): the processes disagreed on it, one loaded the best model
        # at the end and the other did not, and both hung. Made here in every process, they agree.
        if self.is_fsdp_enabled and output_dir is not None:
            os.makedirs(output_dir, exist_ok=True)
        super().save_model(output_dir, _internal_call)
