"""The local backend: run a plan in this process with the transformers Trainer.

`advisor execute` (advisor/cli/execute.py) calls `prepared.prepare` then `run`; the
accelerate backend's generated train.py calls `run` under `accelerate launch`.
One run:

1. read the data (the data toolkit), encode every record once (tasks.py),
   split it as the plan says (stratified by label for classification);
2. train one model per k-fold fold (each on its fold's validation split),
   then the final model on all the non-test data; or one model on the
   train split, watching the validation split;
3. each model: load the base, apply the method plugin, train with per-group
   learning rates; on out-of-memory, downshift and retry from the last
   checkpoint (in one process; under a multi-process launch the run stops:
   `RunFailed`); on Ctrl-C or SIGTERM, save a checkpoint and raise `RunInterrupted`;
4. save the model and tokenizer in DIR, score the held-out test split if the
   plan made one, and write metrics.json, loss.png and the model card.

metrics.json is also written when a run is interrupted or fails: `--resume`
reads it back to skip finished folds and keep the downshifted shape, and
continues each model from its newest complete checkpoint (checkpoints.py),
naming any it skipped, on any number of processes (a sharded FSDP checkpoint
is read back whole for a run without FSDP; said in one line). Every file written here is recorded in
run-manifest.json with its sha256 (artifacts.record): what a later
--overwrite may replace.
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import EXIT_NO, UserError
from ..knowledge_base import resolve_model
from . import artifacts
from .checkpoints import WHOLE, clear_staging, is_sharded, newest_complete, whole_copy, world_size_line
from .downshift import describe, next_shape
from .loading import load_model
from .manifest import MANIFEST_FILE, PROGRESS_FILE, build_manifest, check_resume, load_manifest
from .models import (
    LISTED_LINES,
    Downshift,
    Evaluation,
    MetricSummary,
    RunMetrics,
    StepLoss,
    TrainResult,
    TrainShape,
)
from .param_groups import group_rates
from .prepared import Prepared
from .tasks import ALPACA_PROMPT, ALPACA_PROMPT_WITH_INPUT, FALLBACK_CHAT_HEADER
from .trainer_setup import Schedule, build_trainer, close_progress, training_arguments

#: Trainer log keys that are bookkeeping, not metrics.
_NOT_METRICS = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time", "epoch", "step")


class RunInterrupted(Exception):
    """Ctrl-C: a checkpoint was saved; `command` continues the run."""

    def __init__(self, checkpoint: Optional[str], command: str) -> None:
        super().__init__(checkpoint)
        self.checkpoint = checkpoint
        self.command = command


class RunFailed(UserError):
    """The run started but cannot finish (out of memory at the smallest shape): exit 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=EXIT_NO)


def is_main_process() -> bool:
    """False in the other processes of an `accelerate launch`: only the first one writes the run's files.

    Read from torchrun's environment, not from accelerate's PartialState: a state
    made here, before the TrainingArguments make theirs with use_cpu, is a
    one-process state on a CPU-only machine, so every CPU process was "main".
    """
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """How many processes train this run together (torchrun's WORLD_SIZE; 1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def run(
    prepared: Prepared, backup: Optional[Path] = None, extra_callbacks: Sequence[Any] = (),
    start_downshifts: Sequence[Downshift] = (),
) -> RunMetrics:
    """Train, save and report into a directory `artifacts.prepare_output_dir` made ready.

    `backup` is where --overwrite moved the previous run; it is deleted once this run completes.
    `start_downshifts` are the preflight probe's: the run starts from the shape they reached.
    """
    started = time.monotonic()
    request, out = prepared.request, prepared.output_dir
    if request.resume:
        manifest = check_resume(request)
        previous = artifacts.read_metrics(out)
        if previous is not None and previous.status == "completed":
            print(f"'{out}' holds a completed run: nothing to resume", file=sys.stderr)
            return previous
    else:
        # An accelerate launch finds the manifest its launch files were recorded in: they stay recorded.
        launched = load_manifest(out)
        manifest = build_manifest(
            request, replaced_backup=str(backup) if backup else launched and launched.replaced_backup,
            files=launched.files if launched else None,
        )
        if is_main_process():
            artifacts.write_json(out / MANIFEST_FILE, manifest)
            artifacts.write_json(out / artifacts.PLAN_FILE, request.plan)
            _write_data_split(prepared)
            split_files = sorted(path for path in (out / "data").rglob("*") if path.is_file())
            artifacts.record(out, [out / artifacts.PLAN_FILE, *split_files])
        previous = None
    metrics = previous or _new_metrics(prepared)
    # A snapshot: `metrics` is updated per fold, and the wall time carried over must stay the one read at resume.
    previous = previous.model_copy(deep=True) if previous else None
    if previous is None:
        metrics.downshifts.extend(start_downshifts)
    metrics.status = "interrupted"
    try:
        _train_all(prepared, metrics, extra_callbacks, started, previous)
    except RunInterrupted:
        _finish(prepared, metrics, started, previous)
        raise
    except RunFailed:
        metrics.status = "failed"
        _finish(prepared, metrics, started, previous)
        raise
    metrics.status = "completed"
    _finish(prepared, metrics, started, previous)
    if is_main_process():
        artifacts.drop_backup(manifest.replaced_backup)
    return metrics


def _write_data_split(prepared: Prepared) -> None:
    from ..data import write_split

    handling = prepared.request.plan.training.data
    write_split(
        prepared.data, prepared.split, prepared.output_dir / "data",
        arguments={**handling.model_dump(), "data": prepared.request.data},
    )


def _new_metrics(prepared: Prepared) -> RunMetrics:
    left_out = prepared.encoded.dropped
    return RunMetrics(
        status="interrupted", task=prepared.kind, data_format=prepared.data.format,
        method=prepared.method.name, model=prepared.request.plan.profile.model,
        device=prepared.device.name, precision=prepared.precision.label, eval_metric=prepared.metric,
        label_names=prepared.labels, rows_left_out=len(left_out),
        left_out_lines=[prepared.data.lines[index] for index in left_out[:LISTED_LINES]],
    )


def _train_all(
    prepared: Prepared, metrics: RunMetrics, extra_callbacks: Sequence[Any], started: float,
    previous: Optional[RunMetrics],
) -> None:
    out = prepared.output_dir
    done = {fold.run for fold in metrics.folds}
    for index, fold in enumerate(prepared.split.folds):
        name = f"fold-{index}"
        if name in done:
            continue
        result, trainer = _train_model(
            prepared, metrics, name, fold.train, fold.validation, out / "folds" / name, extra_callbacks,
        )
        metrics.folds.append(result)
        del trainer
        _release_memory()
        # The fold is recorded; its checkpoints (weights + optimizer state) are no longer needed.
        _finish(prepared, metrics, started, previous)
        shutil.rmtree(out / "folds" / name, ignore_errors=True)
    if metrics.folds:
        metrics.kfold_summary = _summarise_folds(metrics.folds)
    train, validation = prepared.main_indices()
    name = "final" if prepared.split.folds else "main"
    result, trainer = _train_model(prepared, metrics, name, train, validation, out / "checkpoints", extra_callbacks)
    metrics.main = result
    _save_model(prepared, trainer)
    test = prepared.split.splits.get("test")
    if test:
        scores = trainer.evaluate(_dataset(prepared.encoded.select(test)), metric_key_prefix="test")
        metrics.test = _metrics_only(scores, "test_")


def _train_model(
    prepared: Prepared, metrics: RunMetrics, name: str, train_idx: list[int], eval_idx: list[int],
    checkpoint_dir: Path, extra_callbacks: Sequence[Any],
) -> tuple[TrainResult, Any]:
    """Train one model, downshifting on out-of-memory; RunInterrupted on Ctrl-C."""
    import torch

    request = prepared.request
    train_features = prepared.encoded.select(train_idx)
    eval_features = prepared.encoded.select(eval_idx)
    shape = _current_shape(prepared, metrics)
    resume_from = _resume_point(checkpoint_dir) if request.resume else None
    while True:
        schedule = prepared.schedule(len(train_features), bool(eval_features), shape, world_size())
        trainer, interrupt = make_trainer(prepared, name, shape, schedule, checkpoint_dir, train_features,
                                          eval_features, extra_callbacks)
        began = time.monotonic()
        out_of_memory: Optional[BaseException] = None
        try:
            trainer.train(resume_from_checkpoint=_loadable(trainer, resume_from, checkpoint_dir))
        except torch.OutOfMemoryError as error:
            out_of_memory = error
        finally:
            interrupt.restore()
            close_progress(trainer)
            if is_main_process():
                shutil.rmtree(checkpoint_dir / WHOLE, ignore_errors=True)
        if out_of_memory is not None:
            step = trainer.state.global_step
            if world_size() > 1:
                # Downshifting this process alone would leave the others waiting for it in a collective, and
                # the processes must share one shape: this one exits non-zero and torchrun stops the others.
                raise RunFailed(
                    f"out of memory at step {step} of {name} in process {os.environ.get('RANK', '0')} of "
                    f"{world_size()}: a multi-process run cannot shrink its batch in one process, so every "
                    "process stops; plan a smaller batch_size or seq_len (or gradient checkpointing) and run again"
                ) from out_of_memory
            del trainer
            _release_memory()
            shape = _downshift(metrics, name, shape, step, out_of_memory)
            resume_from = _resume_point(checkpoint_dir)
            continue
        result = _result(trainer, name, shape, time.monotonic() - began, len(train_features), len(eval_features),
                         len(train_idx) + len(eval_idx) - len(train_features) - len(eval_features), interrupt.interrupted)
        if interrupt.interrupted:
            checkpoint, _ = newest_complete(checkpoint_dir)
            raise RunInterrupted(str(checkpoint) if checkpoint else None, request.resume_command())
        return result, trainer


def _resume_point(checkpoint_dir: Path) -> Optional[str]:
    """The newest complete checkpoint (None: start over), naming each newer one skipped; unfinished saves go.

    A checkpoint written by another number of processes is resumed too, said in one line.
    """
    checkpoint, skipped = newest_complete(checkpoint_dir)
    for line in skipped:
        print(f"warning: skipped checkpoint {line}", file=sys.stderr)
    if is_main_process():
        clear_staging(checkpoint_dir)
        moved = checkpoint and world_size_line(checkpoint, world_size())
        if moved:
            print(moved, file=sys.stderr)
    return str(checkpoint) if checkpoint else None


def _loadable(trainer: Any, checkpoint: Optional[str], checkpoint_dir: Path) -> Optional[str]:
    """What this trainer resumes from: `checkpoint`, or its whole copy when FSDP sharded it and this run does not
    shard (checkpoints.whole_copy). FSDP to FSDP on any number of processes needs no copy: accelerate loads the
    shards through torch.distributed.checkpoint, which reshards on load."""
    if checkpoint is None:
        return None
    if trainer.is_fsdp_enabled and not is_sharded(Path(checkpoint)):
        raise UserError(
            f"cannot resume '{checkpoint}' under FSDP: it was written whole, without FSDP, and FSDP reads only "
            "its own sharded checkpoints; finish the run without FSDP (`advisor execute ... --resume`, one process)"
        )
    if trainer.is_fsdp_enabled or not is_sharded(Path(checkpoint)):
        return checkpoint
    if is_main_process():
        whole_copy(Path(checkpoint), checkpoint_dir, trainer.model)
    trainer.accelerator.wait_for_everyone()
    return str(checkpoint_dir / WHOLE / Path(checkpoint).name)


def _downshift(metrics: RunMetrics, name: str, shape: TrainShape, step: int, error: BaseException) -> TrainShape:
    """The next shape after an out-of-memory error, logged in metrics; RunFailed when none is left."""
    after = next_shape(shape)
    if after is None:
        raise RunFailed(f"out of memory at step {step} of {name} even at micro-batch 1 with gradient "
                        "checkpointing; plan a smaller seq_len or a lighter method") from error
    message = str(error).strip().splitlines()[0][:300] if str(error).strip() else "out of memory"
    metrics.downshifts.append(Downshift(run=name, at_step=step, before=shape, after=after, error=message))
    print(f"out of memory at step {step} of {name}: retrying with {describe(shape, after)}", file=sys.stderr)
    return after


def _current_shape(prepared: Prepared, metrics: RunMetrics) -> TrainShape:
    """The plan's shape, or the last one a downshift chose (the probe's, an earlier fold's; kept across --resume)."""
    return metrics.downshifts[-1].after if metrics.downshifts else prepared.initial_shape()


def make_trainer(
    prepared: Prepared, name: str = "main", shape: Optional[TrainShape] = None, schedule: Optional[Schedule] = None,
    checkpoint_dir: Optional[Path] = None, train_features: Optional[list[dict]] = None,
    eval_features: Optional[list[dict]] = None, extra_callbacks: Sequence[Any] = (),
) -> tuple[Any, Any]:
    """A freshly loaded model in a configured Trainer; by default the saved model's data, shape and directory."""
    request, hp = prepared.request, prepared.hp
    if train_features is None or eval_features is None:
        train_idx, eval_idx = prepared.main_indices()
        train_features, eval_features = prepared.encoded.select(train_idx), prepared.encoded.select(eval_idx)
    shape = shape or prepared.initial_shape()
    schedule = schedule or prepared.schedule(len(train_features), bool(eval_features), shape, world_size())
    model, pretrained = load_model(
        prepared.source, prepared.kind, prepared.precision, prepared.method, prepared.method_hp, labels=prepared.labels, pad_token_id=prepared.tokenizer.pad_token_id,
    )
    trainer_class, config_class, extra = None, None, {}
    if prepared.method.objective == "preference":
        trainer_class, config_class, extra = prepared.method.preference_trainer(prepared.method_hp)
        extra = {**extra, "max_length": hp.seq_len}
    args = training_arguments(
        str(checkpoint_dir or prepared.output_dir / "checkpoints"), hp, shape, schedule, prepared.precision,
        prepared.device, prepared.kind, request.plan.training.data.seed, request.max_steps,
        config_class=config_class, extra=extra,
    )
    callbacks = [*prepared.method.training_callbacks(model, prepared.method_hp), *extra_callbacks]
    return build_trainer(
        model=model, tokenizer=prepared.tokenizer, kind=prepared.kind, train_features=train_features,
        eval_features=eval_features, args=args, hp=hp, group_rates=group_rates(hp), pretrained=pretrained,
        label=name, progress_log=prepared.output_dir / PROGRESS_FILE, extra_callbacks=callbacks,
        trainer_class=trainer_class, packed=prepared.packed,
    )


def _result(
    trainer: Any, name: str, shape: TrainShape, runtime_s: float, train_examples: int, eval_examples: int,
    dropped: int, interrupted: bool,
) -> TrainResult:
    state = trainer.state
    losses = [
        StepLoss(step=entry["step"], epoch=entry.get("epoch", 0.0), loss=entry["loss"],
                 learning_rate=entry.get("learning_rate"))
        for entry in state.log_history if "loss" in entry
    ]
    evaluations = [
        Evaluation(step=entry["step"], epoch=entry.get("epoch"), metrics=_metrics_only(entry, "eval_"))
        for entry in state.log_history if "eval_loss" in entry
    ]
    best_step = getattr(state, "best_global_step", None)
    kept = next((e for e in evaluations if e.step == best_step), evaluations[-1] if evaluations else None)
    return TrainResult(
        run=name, train_examples=train_examples, validation_examples=eval_examples, dropped_examples=dropped,
        steps=state.global_step, epochs=float(state.epoch or 0.0),
        runtime_s=runtime_s, shape=shape,
        losses=losses, evaluations=evaluations, best_step=best_step, best_metric=state.best_metric,
        early_stopped=not interrupted and bool(evaluations) and state.global_step < state.max_steps,
        final_eval=kept.metrics if kept else {},
    )


def _metrics_only(logs: dict[str, Any], prefix: str) -> dict[str, float]:
    scores = {
        key[len(prefix):]: float(value) for key, value in logs.items()
        if key.startswith(prefix) and not key[len(prefix):].endswith(_NOT_METRICS)
    }
    if "loss" in scores and "token_accuracy" in scores:
        scores["perplexity"] = math.exp(min(scores["loss"], 50.0))
    return scores


def _summarise_folds(folds: list[TrainResult]) -> dict[str, MetricSummary]:
    names = [name for name in folds[0].final_eval if all(name in fold.final_eval for fold in folds)]
    summary = {}
    for name in names:
        values = [fold.final_eval[name] for fold in folds]
        summary[name] = MetricSummary(mean=statistics.fmean(values), std=statistics.pstdev(values), values=values)
    return summary


def _save_model(prepared: Prepared, trainer: Any) -> None:
    out = prepared.output_dir
    started_ns = time.time_ns() - 2_000_000_000  # file times may lag the clock (coarse timestamps)
    if trainer.is_fsdp_enabled:
        # Checkpoints stay sharded; the saved model is gathered whole (every process takes part, the first
        # one writes) so that plain from_pretrained loads it. With SHARDED_STATE_DICT, save_model wrote no weights.
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(out))
    model = trainer.model
    prepared.adapter = hasattr(model, "peft_config")
    if prepared.adapter and is_main_process():
        # An adapter: keep the base config (label names included) next to it for loading.
        model.get_base_model().config.save_pretrained(str(out))
    if is_main_process():
        artifacts.record(out, [path for path in artifacts.written_since(out, started_ns) if path.name != MANIFEST_FILE])


def _dataset(features: list[dict]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(features)


def _release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _finish(prepared: Prepared, metrics: RunMetrics, started: float, previous: Optional[RunMetrics]) -> None:
    """metrics.json, loss.png and the model card, whatever the outcome."""
    if not is_main_process():
        return
    out = prepared.output_dir
    metrics.wall_time_s = (previous.wall_time_s if previous else 0.0) + time.monotonic() - started
    artifacts.write_json(out / artifacts.METRICS_FILE, metrics)
    artifacts.plot_losses(metrics, out / artifacts.LOSS_PLOT)
    if metrics.status == "completed":
        model = prepared.request.plan.profile.model
        card = artifacts.model_card(
            metrics, out, prepared.source, resolve_model(model).hf_id or model,
            adapter=prepared.adapter, prompt_format=prompt_format(prepared),
            plain_checkpoint=prepared.method.plain_checkpoint,
        )
        (out / artifacts.MODEL_CARD).write_text(card, encoding="utf-8")
    written = [artifacts.METRICS_FILE, artifacts.LOSS_PLOT, artifacts.MODEL_CARD, PROGRESS_FILE]
    artifacts.record(out, [out / name for name in written if (out / name).is_file()])


def prompt_format(prepared: Prepared) -> str:
    """The model card's note on how inputs were formatted in training (so inference can match)."""
    if prepared.data.format == "alpaca":
        return ("Stanford Alpaca prompts; the response follows `### Response:`. Each example was tokenized as one "
                "string, `tokenizer(prompt + response + eos_token)` with the tokenizer's own special tokens (its BOS, "
                "if it has one), loss on the response and EOS only: at inference tokenize the prompt the same way, "
                "`tokenizer(prompt)`, and generate.\n\n```\n" + ALPACA_PROMPT_WITH_INPUT
                + "```\n\nWithout an input:\n\n```\n" + ALPACA_PROMPT + "```")
    if prepared.data.format == "chat":
        if getattr(prepared.tokenizer, "chat_template", None):
            return ("The tokenizer's chat template: each conversation was trained as exactly "
                    "`tokenizer.apply_chat_template(messages)` (the template writes the special tokens; none is "
                    "added), loss on each assistant message and the end-of-turn token the template writes after "
                    "it (or on what the template's `{% generation %}` blocks mark). Generate from "
                    "`tokenizer.apply_chat_template(messages, add_generation_prompt=True)`.")
        return ("The tokenizer has no chat template; each message was written as "
                f"`{FALLBACK_CHAT_HEADER.strip()}` on its own line, then the content and a newline "
                "(assistant content ends with the EOS token), and the whole conversation tokenized as one string "
                "with the tokenizer's special tokens (`tokenizer(text)`). Generate after `<|assistant|>` and a "
                "newline.")
    return ""
