"""The plan's training settings -> transformers TrainingArguments and a configured Trainer.

`local.py` calls `make_schedule` (steps, evaluation and checkpoint cadence)
and `build_trainer` once per model it trains (and again after an
out-of-memory downshift). Choices made here, not in the plan:

- evaluation and checkpoints share one cadence (the Trainer's best-model
  bookkeeping needs checkpoints at evaluation steps): `--save-steps`, else half
  an epoch, at most `MAX_CADENCE` steps, and at least twice per run;
- early stopping (EarlyStoppingCallback, patience from the plan) and
  restoring the best checkpoint at the end are on whenever there is a
  validation split (seed 003 §4.2, §5.2);
- evaluation keeps no logits (metrics.py); losses are logged every step;
- batches group examples of similar length (sampling.py), longest first;
- nothing is reported to a tracker or the Hub;
- an FSDP launch on CPU processes shards as on GPUs (`_shard_on_cpu`);
- the plan's `fused_cross_entropy`: liger's fused loss through the Trainer on
  CUDA, else the chunked loss installed on the model (chunked_loss.py).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from pydantic import BaseModel

from ..errors import UserError
from ..models import TrainingHyperparameters
from .callbacks import RunProgress, SaveOnInterrupt
from ..precision import Dtypes
from .chunked_loss import LIGER_CONFIG, fused_loss_kind
from .hardware import Device
from .models import TrainShape

#: The longest gap between two checkpoints, in optimizer steps.
MAX_CADENCE = 500
#: What each task can watch for early stopping; aliases a plan may use.
METRICS = {
    "classification": ("loss", "accuracy", "macro_f1"), "causal_lm": ("loss", "token_accuracy"),
    # TRL's preference trainers log the reward margin and how often the chosen answer wins
    "preference": ("loss", "rewards/accuracies", "rewards/margins"),
}
METRIC_ALIASES = {"eval_loss": "loss", "f1": "macro_f1", "macro-f1": "macro_f1", "acc": "accuracy"}
#: The plan's optimizer -> TrainingArguments.optim.
OPTIMIZERS = {"adamw": "adamw_torch_fused", "adamw_8bit": "adamw_bnb_8bit", "paged_adamw_8bit": "paged_adamw_8bit"}


class Schedule(BaseModel):
    steps_per_epoch: int
    total_steps: int
    cadence: int
    evaluate: bool


def make_schedule(
    train_examples: int, shape: TrainShape, hp: TrainingHyperparameters, has_eval: bool,
    max_steps: Optional[int] = None, save_steps: Optional[int] = None, processes: int = 1,
) -> Schedule:
    # Every process takes its own micro-batches: one optimizer step covers all processes' rows.
    per_step = shape.batch_size * shape.gradient_accumulation_steps * processes
    steps_per_epoch = max(1, math.ceil(train_examples / per_step))
    total = max_steps or max(1, math.ceil(steps_per_epoch * hp.epochs))
    cadence = save_steps or min(max(1, math.ceil(steps_per_epoch / 2)), MAX_CADENCE, max(1, total // 2))
    return Schedule(steps_per_epoch=steps_per_epoch, total_steps=total, cadence=cadence, evaluate=has_eval)


def watched_metric(name: str, kind: str) -> str:
    """The plan's eval_metric as this task's metric name; 'accuracy' means next-token accuracy for a causal LM."""
    metric = METRIC_ALIASES.get(name, name)
    if kind == "causal_lm" and metric == "accuracy":
        metric = "token_accuracy"
    if metric not in METRICS[kind]:
        raise UserError(f"unknown plan.json training.hyperparameters.eval_metric '{name}' for {kind}; "
                        f"known: {', '.join(METRICS[kind])}")
    return metric


def training_arguments(
    checkpoint_dir: str, hp: TrainingHyperparameters, shape: TrainShape, schedule: Schedule,
    precision: Dtypes, device: Device, kind: str, seed: int, max_steps: Optional[int],
    config_class: Optional[type] = None, extra: Optional[dict[str, Any]] = None,
) -> Any:
    """TrainingArguments, or `config_class` (a TRL config, a subclass) with its own `extra` settings."""
    from transformers import TrainingArguments

    evaluate = schedule.evaluate
    args = (config_class or TrainingArguments)(
        output_dir=checkpoint_dir,
        per_device_train_batch_size=shape.batch_size,
        per_device_eval_batch_size=shape.batch_size,
        gradient_accumulation_steps=shape.gradient_accumulation_steps,
        activation_checkpointing=shape.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if shape.gradient_checkpointing else None,
        num_train_epochs=hp.epochs,
        max_steps=max_steps or -1,
        learning_rate=hp.learning_rate,
        lr_scheduler_type=hp.scheduler,
        warmup_steps=hp.warmup_ratio,
        weight_decay=hp.weight_decay,
        max_grad_norm=hp.max_grad_norm,
        optim=OPTIMIZERS[hp.optimizer],
        **precision.trainer_flags(),
        use_cpu=device.kind == "cpu",
        eval_strategy="steps" if evaluate else "no",
        eval_steps=schedule.cadence if evaluate else None,
        save_strategy="steps",
        save_steps=schedule.cadence,
        save_total_limit=1,
        load_best_model_at_end=evaluate,
        metric_for_best_model=watched_metric(hp.eval_metric, kind) if evaluate else None,
        batch_eval_metrics=True,
        restore_callback_states_from_checkpoint=True,
        logging_strategy="steps",
        logging_steps=1,
        report_to="none",
        disable_tqdm=False,  # else the Trainer prints log dicts to stdout; its bar is replaced by RunProgress
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        **(_liger(hp, kind, device) if config_class is None else {}),
        **(extra or {}),
    )
    if device.kind == "cpu" and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":  # accelerate launch
        _shard_on_cpu(args)
    return args


def _liger(hp: TrainingHyperparameters, kind: str, device: Device) -> dict[str, Any]:
    """The Trainer applies liger-kernel's fused loss itself (transformers.integrations.liger) when asked to."""
    if fused_loss_kind(hp.fused_cross_entropy, kind, device.kind) != "liger":
        return {}
    return {"use_liger_kernel": True, "liger_kernel_config": LIGER_CONFIG}


def _shard_on_cpu(args: Any) -> None:
    """Let an FSDP launch on CPU processes (gloo) shard, as it does on GPUs.

    accelerate 1.15 turns a launch into FSDP only from a multi-device state
    (AcceleratorState.__init__ lists MULTI_GPU, MULTI_XPU, ...; not MULTI_CPU),
    so an FSDP config with use_cpu silently ran DDP: measured, the Trainer's
    accelerator had no fsdp_plugin. torch's FSDP2 `fully_shard` runs on CPU over
    gloo; naming the process group's state multi-device before the Trainer
    builds its Accelerator takes accelerate's FSDP path. The device stays the CPU.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    # args.device sets up the process group and its state (TrainingArguments._setup_devices).
    if args.device.type == "cpu" and args.distributed_state.distributed_type == DistributedType.MULTI_CPU:
        PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU


def build_trainer(
    *, model: Any, tokenizer: Any, kind: str, train_features: Sequence[dict], eval_features: Sequence[dict],
    args: Any, hp: TrainingHyperparameters, group_rates: dict[str, float], pretrained: set[str], label: str,
    progress_log: Optional[Path] = None, extra_callbacks: Sequence[Any] = (), trainer_class: Optional[type] = None,
    packed: bool = False,
) -> tuple[Any, SaveOnInterrupt]:
    """The plan's Trainer, or a preference method's TRL `trainer_class` (its own loss, data and optimizer)."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, PrinterCallback, ProgressCallback

    from .chunked_loss import install_chunked_loss
    from .metrics import argmax_logits, make_scorer
    from .packing import packing_collator
    from .plan_trainer import PlanTrainer
    from .tasks import make_collator

    interrupt = SaveOnInterrupt()
    callbacks: list[Any] = [RunProgress(label, args.metric_for_best_model or "loss", progress_log), interrupt, *extra_callbacks]
    if eval_features and hp.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=hp.early_stopping_patience))
    if trainer_class is not None:
        from .preference import build_preference_trainer

        trainer = build_preference_trainer(
            trainer_class, model=model, tokenizer=tokenizer, args=args, train_features=train_features,
            eval_features=eval_features, callbacks=callbacks,
        )
    else:
        if fused_loss_kind(hp.fused_cross_entropy, kind, args.device.type) == "chunked":
            install_chunked_loss(model)
        trainer = PlanTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(list(train_features)),
            eval_dataset=Dataset.from_list(list(eval_features)) if eval_features else None,
            processing_class=tokenizer,
            data_collator=packing_collator() if packed else make_collator(kind, tokenizer),
            compute_metrics=make_scorer(kind),
            preprocess_logits_for_metrics=argmax_logits,
            callbacks=callbacks,
            group_rates=group_rates,
            pretrained=pretrained,
        )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    return trainer, interrupt


def close_progress(trainer: Any) -> None:
    """Close the progress bar also when train() raised (its on_train_end never ran)."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, RunProgress):
            callback.on_train_end(None, None, None)
