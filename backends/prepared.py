"""The prepared run: a plan resolved against this machine and the data, before any model loads.

`prepare` is the one place a run is resolved; the dry run (describe.py), the
preflight, the local backend and the accelerate backend all read the same
`Prepared`, so what is printed is what trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..data import LoadedData, SplitPlan, load_records, split_records
from ..data.split import SplitRefused
from ..model_tasks import refuse_untrainable_plan
from ..errors import EXIT_NO, UserError, describe_validation_error
from ..knowledge_base import resolve_model
from ..manager import footprint_of, get_method
from ..methods import Method, MethodHyperparameters
from ..models import DataHandling, TrainingHyperparameters
from ..precision import Dtypes
from .hardware import (
    Device,
    check_method_runs_here,
    detect_device,
    run_dtypes,
)
from .loading import check_reachable, load_tokenizer, model_available, model_source, model_type_of, quiet_libraries
from .models import ExecuteRequest, TrainShape
from .packing import packing_refusal
from .tasks import (
    Encoded,
    TaskKind,
    encode_records,
    ensure_pad_token,
    label_names,
    task_kind,
)
from .trainer_setup import Schedule, make_schedule, watched_metric


class Prepared(BaseModel):
    """Everything resolved before the first model loads: what the dry run prints and the run uses."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    request: ExecuteRequest
    method: Method
    method_hp: MethodHyperparameters
    hp: TrainingHyperparameters
    device: Device
    freezes_base_weights: bool = Field(description="base weights stay frozen (Footprint.freezes_base_weights)")
    precision: Dtypes
    source: str
    data: LoadedData
    kind: TaskKind
    tokenizer: Any = Field(None, description="a transformers tokenizer (PreTrainedTokenizerBase); None with encoded")
    labels: list[str]
    encoded: Optional[Encoded] = Field(
        None, description="None only where launch files are written without the model's tokenizer (files_only)")
    split: SplitPlan
    metric: str
    packed: bool = Field(False, description="micro-batches train as padding-free packed rows (packing.py)")
    packing_note: str = Field("", description="why packing is off, when it is")
    adapter: bool = False

    @property
    def output_dir(self) -> Path:
        return Path(self.request.output_dir)

    def initial_shape(self) -> TrainShape:
        return TrainShape(
            batch_size=self.hp.batch_size,
            gradient_accumulation_steps=self.hp.gradient_accumulation_steps,
            gradient_checkpointing=self.hp.gradient_checkpointing,
        )

    def main_indices(self) -> tuple[list[int], list[int]]:
        """(train, validation) of the saved model: k-fold trains it on everything but the test split."""
        if self.split.folds:
            held_out = set(self.split.splits.get("test", []))
            return [i for i in range(len(self.data.records)) if i not in held_out], []
        return self.split.splits["train"], self.split.splits.get("validation", [])

    def schedule(self, train_examples: int, has_eval: bool, shape: Optional[TrainShape] = None,
                 processes: int = 1) -> Schedule:
        """The steps of `processes` training together (accelerate launch's; 1 for `advisor execute`)."""
        return make_schedule(
            train_examples, shape or self.initial_shape(), self.hp, has_eval,
            self.request.max_steps, self.request.save_steps, processes,
        )


def prepare(request: ExecuteRequest, tokenized: Optional[Path] = None) -> Prepared:
    """Resolve the plan against this machine and the data; no model is loaded. UserError on any mismatch.

    `tokenized`: a folder `python train.py --prepare-only` saved the encoding in (pretokenize.py); when it is
    there, the records are read from it instead of tokenised again (a stale one is refused).
    """
    plan = request.plan
    if plan.training is None:
        raise UserError(f"the plan recommends '{plan.recommendation.approach}': there is nothing to train", EXIT_NO)
    training = plan.training
    method = get_method(training.method)
    try:
        method_hp = method.hyperparameters(training.hyperparameters.method)
    except ValidationError as error:
        raise UserError(f"plan.json training.hyperparameters.method ({method.name}): "
                        f"{describe_validation_error(error, method.Hyperparameters)}") from None
    device = detect_device()
    source = model_source(plan.profile.model)
    if files_only(request):
        tokenize = model_available(source)
    else:
        check_method_runs_here(method, device)
        check_reachable(source)
        tokenize = True
    refuse_untrainable_plan(plan.profile.task, plan.profile.model, resolve_model(plan.profile.model))
    quiet_libraries()
    data = load_records(request.data)
    if not data.records:
        raise UserError(f"'{request.data}' holds no valid record", EXIT_NO)
    kind = task_kind(data.format, plan.profile.task)
    if (kind == "preference") != (method.objective == "preference"):
        raise UserError(
            f"plan.json training.method '{method.name}' trains on {method.objective} data but the data is "
            f"'{data.format}'; plan again with the data (`advisor plan --data {request.data}`)"
        )
    pad_left = kind == "classification" and reads_a_padded_last_position(plan.profile.model, method, method_hp)
    labels = label_names(data.records) if kind == "classification" else []
    hp = training.hyperparameters
    tokenizer = encoded = None
    if tokenize:
        tokenizer = load_tokenizer(source, pad_left=pad_left)
        ensure_pad_token(tokenizer)  # batches need one; decoders (GPT-2, Llama, Qwen) often ship without
    if tokenized is not None and tokenized.is_dir():
        from .pretokenize import load

        encoded = load(tokenized, request)
    elif tokenize:
        encoded = encode_records(
            data.records, data.format, tokenizer, hp.seq_len, {name: i for i, name in enumerate(labels)}
        )
    refusal = packing_refusal(kind, method, model_type_of(source, plan.profile.model))
    if hp.packing and refusal:
        raise UserError(f"plan.json training.hyperparameters.packing is true but {refusal}; set it to null or false")
    frozen = footprint_of(method, resolve_model(plan.profile.model).architecture, method_hp).freezes_base_weights
    return Prepared(
        request=request, method=method, method_hp=method_hp, hp=hp, device=device, freezes_base_weights=frozen,
        precision=run_dtypes(training.precision, device, frozen), source=source, data=data, kind=kind,
        tokenizer=tokenizer, labels=labels, encoded=encoded, split=make_split(data, training.data, kind),
        metric=watched_metric(hp.eval_metric, kind), packed=hp.packing is not False and refusal is None,
        packing_note="off in the plan" if hp.packing is False else refusal or "",
    )


def files_only(request: ExecuteRequest) -> bool:
    """`--backend accelerate --dry-run` writes launch files for another machine: the model, its tokenizer and the
    method's hardware need only be there. Without the tokenizer here (offline, not cached) it still writes them."""
    return request.backend == "accelerate" and request.dry_run


def reads_a_padded_last_position(model: str, method: Method, method_hp: MethodHyperparameters) -> bool:
    """A decoder's classifier reads the last token that is not padding. It finds it in the input ids, but prompt
    tuning feeds embeddings (virtual tokens first), so it reads the last position, padding or not: pad left.
    (The virtual tokens then sit before the padding: a padded text is further from them than alone.)"""
    arch = resolve_model(model).architecture
    footprint = method.footprint(arch, method_hp)
    return arch.kind == "decoder" and footprint.virtual_tokens > 0 and footprint.virtual_tokens_in == "sequence"


def make_split(data: LoadedData, handling: DataHandling, kind: TaskKind) -> SplitPlan:
    """The plan's split; a refusal names the plan.json key to change (execute has no split flags)."""
    try:
        return _plan_split(data, handling, kind)
    except SplitRefused as refused:
        raise UserError(f"{refused.reason}: change plan.json training.data.{refused.setting}") from None


def _plan_split(data: LoadedData, handling: DataHandling, kind: TaskKind) -> SplitPlan:
    """A plan without validation (and no k-fold) trains on all but the test share."""
    stratify = "label" if handling.stratify and kind == "classification" else None
    rows = data.rows()
    if handling.kfold or handling.validation_ratio > 0:
        return split_records(
            rows, validation_ratio=handling.validation_ratio, test_ratio=handling.test_ratio,
            stratify_by=stratify, kfold=handling.kfold, seed=handling.seed,
        )
    everything = list(range(len(rows)))
    if handling.test_ratio == 0:
        return SplitPlan(strategy="none", seed=handling.seed, splits={"train": everything})
    try:
        held = split_records(rows, validation_ratio=handling.test_ratio, stratify_by=stratify, seed=handling.seed)
    except SplitRefused as refused:  # the share held out here is the plan's test_ratio
        setting = "test_ratio" if refused.setting == "validation_ratio" else refused.setting
        raise SplitRefused(refused.reason, setting) from None
    return held.model_copy(update={"splits": {"train": held.splits["train"], "test": held.splits["validation"]}})
