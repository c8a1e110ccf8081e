"""One method configured for a profile: its settings from the rules, and where it fits.

The planner configures every registered method this way (the recommendation
and its alternatives), and searches other hardware with it when nothing fits.
Settings come from the training and data rules for that method; the shape
comes from the estimator's what-fits search. A method that cannot serve the
model, the task or the hardware (or whose settings do not fit the model) is
configured as unavailable, with the reason: it is never chosen, and it never
stops the other methods from being planned.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import rules as rulebook
from .estimate import EstimateRequest, estimate
from .errors import UserError, describe_validation_error
from .estimate.search import FitResult, best_fit, smallest_tried
from .estimate.sharding import world_size
from .facts import Facts, derive_facts, method_facts
from .knowledge_base import ModelEntry, gpus, models, resolve_gpu, tasks
from .manager import footprint_of
from .methods import Method
from .models import Alternative, Estimate, Profile
from .rules import Settings

#: Plan settings that map onto a method's own hyperparameter fields.
METHOD_SETTING_FIELDS = {"lora_rank": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
                         "num_virtual_tokens": "num_virtual_tokens", "trainable_layers": "trainable_layers",
                         "compute_dtype": "compute_dtype", "use_rslora": "use_rslora"}


class Candidate(BaseModel):
    """One method configured for this profile, and where it fits (no estimate when it is unavailable)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    method: Method
    settings: dict[str, Any]
    provenance: dict[str, str]
    request: Optional[EstimateRequest] = None
    fit: Optional[FitResult] = None
    estimate: Optional[Estimate] = None
    excluded_by: Optional[str] = None
    smallest: Optional[Estimate] = None
    unavailable: Optional[str] = Field(None, description="why the method cannot serve this profile at all")


def settings_for(method: Method, facts: Facts) -> tuple[dict[str, Any], dict[str, str]]:
    """Training and data settings the rules give `method`, with the rule id behind each."""
    facts = facts.model_copy(update=method_facts(method, []))
    values: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    for stage in ("training", "data"):
        for rule in rulebook.matching(stage, facts):
            for key, value in (rule.set or Settings()).model_dump(exclude_none=True).items():
                values[key] = value
                provenance[key] = rule.id
    if isinstance(values.get("learning_rate"), str):
        values["learning_rate"] = rate_in_range(method.learning_rate, values["learning_rate"])
    return values, provenance


def rate_in_range(bounds: tuple[float, float], point: str) -> float:
    low, high = bounds
    rate = {"method.low/2": low / 2, "method.low": low, "method.high": high, "method.mid": math.sqrt(low * high)}[point]
    return float(f"{rate:.1g}")


def method_hyperparameters(method: Method, settings: dict[str, Any]) -> dict[str, Any]:
    """The method's own hyperparameters: its defaults, overridden by the settings it accepts."""
    accepted = method.Hyperparameters.model_fields
    values = {field: settings[key] for key, field in METHOD_SETTING_FIELDS.items()
              if key in settings and field in accepted}
    return method.hyperparameters(values).model_dump()


def sequence_length(profile: Profile, model: ModelEntry, data_report: Any) -> int:
    """The user's, else the data's p95 rounded up to a multiple of 64, else the task default."""
    if profile.seq_len:
        length = profile.seq_len
    elif data_report is not None and getattr(data_report.stats, "token_lengths", None):
        p95 = data_report.stats.token_lengths.p95
        length = max(64, int(math.ceil(p95 / 64) * 64))
    else:
        length = tasks()[profile.task].seq_len
    return min(length, model.architecture.max_position_embeddings)


def unavailable_reason(method: Method, model: ModelEntry, facts: Facts) -> Optional[str]:
    """Why `method` cannot serve this model, task and hardware at all, or None."""
    if method.requires_cuda and not facts.gpu_cuda:
        return f"needs a CUDA GPU and {facts.gpu} is not one"
    return method.unavailable(model.architecture, "classification" if facts.head == "classification" else "lm")


def configure(method: Method, profile: Profile, model: ModelEntry, facts: Facts, data_report: Any,
              excluded_by: Optional[str]) -> Candidate:
    settings, provenance = settings_for(method, facts)
    reason = unavailable_reason(method, model, facts)
    if reason is None:
        try:
            hp = method.hyperparameters(method_hyperparameters(method, settings))
            footprint = footprint_of(method, model.architecture, hp)
        except UserError as error:  # a plugin's own failure (PluginError) included
            reason = f"its settings do not fit this model: {error.message}"
        except ValidationError as error:
            reason = f"its settings are invalid: {describe_validation_error(error, method.Hyperparameters)}"
    if reason is not None:
        return Candidate(method=method, settings=settings, provenance=provenance, excluded_by=excluded_by,
                         unavailable=reason)
    seq_len = sequence_length(profile, model, data_report)
    # The rules' effective batch is global: each of the devices (of every node) takes its share of it.
    devices = world_size(profile.num_gpus, profile.num_nodes)
    effective = max(1, math.ceil(settings.get("effective_batch", 16) / devices))
    gpu = resolve_gpu(profile.gpu)
    mean_tokens = getattr(getattr(getattr(data_report, "stats", None), "token_lengths", None), "mean", None)
    request = EstimateRequest(
        architecture=model.architecture,
        footprint=footprint,
        precision=settings.get("precision", "bf16"),
        batch_size=profile.batch_size or effective,
        seq_len=seq_len,
        num_gpus=profile.num_gpus,
        num_nodes=profile.num_nodes,
        sharding="ddp" if devices > 1 else "none",
        head="classification" if facts.head == "classification" else "lm",
        num_labels=facts.data_labels or 2,
        gpu=gpu,
        device_memory_gib=profile.gpu_memory_gib,
        tasks=profile.tasks,
        train_tokens=train_tokens(profile, facts, settings, mean_tokens or seq_len / 2),
        price_per_hour=profile.price_per_hour,
        # The run packs causal-LM SFT (TrainingHyperparameters.packing null; backends/packing.py says where not).
        packed_mean_tokens=mean_tokens if facts.head == "lm" and model.architecture.kind == "decoder"
        and not footprint.virtual_tokens and footprint.sequences_per_example == 1 else None,
    )
    fit = best_fit(request, effective_batch=max(effective, request.batch_size))
    smallest = None if fit else smallest_tried(request, effective_batch=max(effective, request.batch_size))
    return Candidate(method=method, settings=settings, provenance=provenance, request=request, fit=fit,
                     estimate=fit.estimate if fit else estimate(request), excluded_by=excluded_by,
                     smallest=smallest)


def train_tokens(profile: Profile, facts: Facts, settings: dict[str, Any], tokens_per_example: float) -> int:
    """Tokens the run trains on: what is not held out for validation, times the epochs.

    An unlabelled corpus is cut into sequences packed full, so it trains on its own token count; labelled
    examples take their mean length each (the data's, else half of seq_len).
    """
    tokens = facts.corpus_tokens if facts.corpus_stage else profile.examples * tokens_per_example
    return int(tokens * (1 - settings.get("validation_ratio", 0.2)) * settings.get("epochs", 3))


def fit_change_kinds(candidate: Candidate) -> list[str]:
    """Which compromises the fit search made (the memory rules' fit_changes fact)."""
    if candidate.fit is None:
        return []
    asked, got = candidate.request, candidate.fit.request
    kinds = {
        "gradient_checkpointing": got.gradient_checkpointing and not asked.gradient_checkpointing
        and not asked.footprint.forces_gradient_checkpointing,
        "gradient_accumulation": candidate.fit.gradient_accumulation_steps > 1,
        "optimizer": got.optimizer != asked.optimizer,
        "seq_len": got.seq_len < asked.seq_len,
        # The memory rules say which sharding and why: hybrid (several nodes) or full (FSDP / ZeRO-3).
        "sharding": got.sharding != asked.sharding and got.sharding != "hybrid",
        "hybrid_sharding": got.sharding != asked.sharding and got.sharding == "hybrid",
        "quantized_sharding": got.sharding != asked.sharding and got.footprint.quantized_base,
        "offload": got.offload != asked.offload,
        "fused_cross_entropy": got.fused_cross_entropy and not asked.fused_cross_entropy,
    }
    return [kind for kind, changed in kinds.items() if changed]


#: What an alternative's config shows of the request it fits with: the shape, the memory compromises and the nodes.
ALTERNATIVE_CONFIG = {"batch_size", "seq_len", "gradient_checkpointing", "optimizer", "sharding", "offload", "num_nodes"}


def smallest_fitting_hardware(candidates: list[Candidate], profile: Profile, model: ModelEntry,
                              data_report: Any) -> Optional[Alternative]:
    """The least total GPU memory (catalog GPU x count) on which one of `candidates` fits, in order."""
    options = sorted(((gpu, count) for gpu in gpus().values() if gpu.cuda for count in (1, 2, 4, 8)),
                     key=lambda option: (option[0].memory_gib * option[1], option[1]))
    labels = len(data_report.stats.labels) if data_report is not None and data_report.stats.labels else None
    for gpu, count in options:
        asked = (profile.gpu_memory_gib or resolve_gpu(profile.gpu).memory_gib) * world_size(profile.num_gpus,
                                                                                            profile.num_nodes)
        if gpu.memory_gib * count <= asked:
            continue
        elsewhere = profile.model_copy(update={"gpu": gpu.id, "num_gpus": count, "num_nodes": 1, "gpu_memory_gib": None})
        trial = first_fit(candidates, elsewhere, model, derive_facts(elsewhere, model, data_labels=labels), data_report)
        if trial is not None:
            config = trial.fit.request.model_dump(include=ALTERNATIVE_CONFIG)
            return Alternative(approach=trial.method.approach, method=trial.method.name, fits=True,
                               peak_gib=round(trial.estimate.memory.peak_gib, 2),
                               why_not=f"needs other hardware: fits on {count} x {gpu.id} ({gpu.name})",
                               config={"gpu": gpu.id, "num_gpus": count, **config})
    return None


def smaller_fitting_model(candidates: list[Candidate], profile: Profile, model: ModelEntry,
                          data_report: Any) -> Optional[Alternative]:
    """The largest catalog model of the same kind, smaller than `model`, on which one of `candidates` fits."""
    size = model.architecture.total_params()
    smaller = sorted((entry for entry in models().values()
                      if entry.architecture.kind == model.architecture.kind and entry.architecture.total_params() < size),
                     key=lambda entry: -entry.architecture.total_params())
    labels = len(data_report.stats.labels) if data_report is not None and data_report.stats.labels else None
    for entry in smaller:
        elsewhere = profile.model_copy(update={"model": entry.id})
        trial = first_fit(candidates, elsewhere, entry, derive_facts(elsewhere, entry, data_labels=labels), data_report)
        if trial is not None:
            return Alternative(approach=trial.method.approach, method=trial.method.name, fits=True,
                               peak_gib=round(trial.estimate.memory.peak_gib, 2),
                               why_not=f"a smaller model that fits this hardware: {entry.id} "
                                       f"({entry.architecture.total_params() / 1e9:.1f}B parameters)",
                               config={"model": entry.id, **trial.fit.request.model_dump(include=ALTERNATIVE_CONFIG)})
    return None


def first_fit(candidates: list[Candidate], profile: Profile, model: ModelEntry, facts: Facts,
              data_report: Any) -> Optional[Candidate]:
    """The first of `candidates` (not excluded by a rule) that fits when configured for `profile` on `model`."""
    for candidate in candidates:
        if candidate.excluded_by:
            continue
        trial = configure(candidate.method, profile, model, facts, data_report, None)
        if trial.fit is not None:
            return trial
    return None
