"""The resolved run, as `advisor execute --dry-run` prints it: what would train, on what, how.

Built from `prepared.Prepared` (nothing loaded but the tokenizer), so the dry
run and the real run cannot disagree. `--json` prints the model itself.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..estimate.sharding import ENGINE_NAMES, OFFLOAD_NAMES, hardware_label, world_size
from .chunked_loss import fused_loss_kind
from .models import TrainShape
from .param_groups import group_rates
from .prepared import Prepared


class SplitCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str
    seed: int
    train: int = 0
    validation: int = 0
    test: int = 0
    folds: list[dict[str, int]] = []


class ResolvedRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    source: str
    method: str
    method_hyperparameters: dict[str, Any]
    task: str
    data: str
    data_format: str
    records: int
    labels: int
    truncated: int
    dropped: int
    split: SplitCounts
    device: str
    processes: int = Field(description="processes training together, each on its own micro-batches")
    devices: int = Field(description="the plan's devices on all its nodes together")
    hardware: str = Field(description="the plan's devices: 'h100', '8 h100' or '2 nodes x 8 h100'")
    sharding: str = Field(description="the plan's estimate.config sharding: none, ddp, fsdp, hybrid, zero2, zero3")
    offload: str = Field(description="what the plan keeps in CPU memory: none, optimizer or parameters")
    fused_loss: Optional[str] = Field(description="'liger' or 'chunked' for the fused cross-entropy; null: standard")
    precision: str
    shape: TrainShape
    seq_len: int
    packing: str
    epochs: float
    steps_per_epoch: int
    total_steps: int
    checkpoint_every: int
    early_stopping_patience: Optional[int]
    eval_metric: str
    learning_rates: dict[str, float]
    scheduler: str
    warmup_ratio: float
    output_dir: str

    def text(self) -> str:
        split = self.split
        where = (f"{len(split.folds)} folds ({split.strategy}), then the final model on all {split.train} records"
                 if split.folds else f"train {split.train}, validation {split.validation}")
        if split.test:
            where += f", held-out test {split.test}"
        stopping = self.stopping()
        rates = ", ".join(f"{name} {rate:g}" for name, rate in self.learning_rates.items())
        return "\n".join([
            f"model      {self.model} ({self.source})",
            f"method     {self.method} {self.method_hyperparameters or ''}".rstrip(),
            f"task       {self.task}, data '{self.data}' ({self.data_format}, {self.records} records"
            + (f", {self.labels} labels" if self.labels else "") + ")",
            f"tokens     seq_len {self.seq_len}: {self.truncated} records truncated, {self.dropped} left with nothing to learn",
            f"packing    {self.packing}",
            f"split      {where} (seed {split.seed})",
            f"device     {self.device}, {self.precision}",
            *self.layout_lines(),
            f"batch      {self.shape.batch_size} x {self.shape.gradient_accumulation_steps} accumulation"
            + (f" x {self.processes} processes" if self.processes > 1 else "")
            + (", gradient checkpointing" if self.shape.gradient_checkpointing else ""),
            f"schedule   {self.epochs:g} epochs = {self.total_steps} steps ({self.steps_per_epoch}/epoch"
            + (", final model; each fold has fewer" if split.folds else "") + "), "
            f"{self.scheduler}, warmup {self.warmup_ratio:g}; learning rates: {rates}",
            f"checkpoint every {plural(self.checkpoint_every, 'step')}; {stopping}",
            f"output     {self.output_dir}",
        ])

    def stopping(self) -> str:
        """Where early stopping applies (local.py): each fold on its held-out fold, the final model on nothing."""
        split, patience = self.split, self.early_stopping_patience
        if patience and split.folds:
            return (f"each fold stops early on its held-out fold's {self.eval_metric} (patience {patience}), its best "
                    f"checkpoint kept; the final model trains all {self.epochs:g} epochs, with no early stopping")
        if patience and split.validation:
            return f"early stopping on validation {self.eval_metric} (patience {patience}), best checkpoint kept"
        return "no early stopping"

    def layout_lines(self) -> list[str]:
        """The plan's nodes x GPUs, sharding, offload and fused loss, one line each where they apply."""
        lines = []
        if self.devices > 1:
            lines.append(f"devices    {self.hardware}")
        if self.sharding in ENGINE_NAMES and (self.devices > 1 or self.sharding != "ddp"):
            lines.append(f"sharding   {ENGINE_NAMES[self.sharding]}")
        if self.offload in OFFLOAD_NAMES:
            lines.append(f"offload    {OFFLOAD_NAMES[self.offload]}")
        if self.fused_loss:
            lines.append(f"loss       fused LM head + cross-entropy without the full logits "
                         f"({'liger-kernel' if self.fused_loss == 'liger' else 'chunked'})")
        return lines


def plural(count: int, noun: str) -> str:
    """The noun alone for one (checkpoint every step), with its count otherwise (every 5 steps)."""
    return noun if count == 1 else f"{count} {noun}s"


def resolved_run(prepared: Prepared, processes: int = 1) -> ResolvedRun:
    """The run of `processes` training together: 1 for `advisor execute`, every machine's for accelerate launch."""
    split = prepared.split
    train, validation = prepared.main_indices()
    counts = SplitCounts(
        strategy=split.strategy, seed=split.seed, train=len(train), validation=len(validation),
        test=len(split.splits.get("test", [])),
        folds=[{"train": len(fold.train), "validation": len(fold.validation)} for fold in split.folds],
    )
    kept = len(prepared.encoded.select(train))
    schedule = prepared.schedule(kept, bool(validation), processes=processes)
    hp = prepared.hp
    profile = prepared.request.plan.profile
    planned = prepared.request.plan.estimate.config if prepared.request.plan.estimate else {}
    devices = world_size(profile.num_gpus, profile.num_nodes)
    return ResolvedRun(
        model=prepared.request.plan.profile.model, source=prepared.source, method=prepared.method.name,
        method_hyperparameters=prepared.method_hp.model_dump(), task=prepared.kind, data=prepared.request.data,
        data_format=prepared.data.format, records=len(prepared.data.records), labels=len(prepared.labels),
        truncated=prepared.encoded.truncated, dropped=len(prepared.encoded.dropped), split=counts,
        device=prepared.device.name, processes=processes, devices=devices,
        hardware=hardware_label(profile.num_gpus, profile.num_nodes, profile.gpu),
        sharding=planned.get("sharding", "ddp" if devices > 1 else "none"), offload=planned.get("offload", "none"),
        fused_loss=fused_loss_kind(hp.fused_cross_entropy, prepared.kind, prepared.device.kind),
        precision=prepared.precision.label, shape=prepared.initial_shape(),
        seq_len=hp.seq_len, packing=_packing_text(prepared), epochs=hp.epochs, steps_per_epoch=schedule.steps_per_epoch,
        total_steps=schedule.total_steps, checkpoint_every=schedule.cadence,
        early_stopping_patience=hp.early_stopping_patience, eval_metric=prepared.metric,
        learning_rates=group_rates(hp), scheduler=hp.scheduler, warmup_ratio=hp.warmup_ratio,
        output_dir=prepared.request.output_dir,
    )


def _packing_text(prepared: Prepared) -> str:
    if prepared.packed:
        return "on: each micro-batch is one padding-free row, examples kept apart"
    return f"off: {prepared.packing_note}"
