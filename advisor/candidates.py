"""One method configured for a profile: its settings from the rules, and where it fits.

The planner configures every registered method this way (the recommendation
and its alternatives), and searches other hardware with it when nothing fits.
Settings come from the training and data rules for that method; the shape
comes from the estimator's what-fits search. A method that cannot serve the
model, the task or the hardware (or whose settings do not fit the model) is
configured as unavailable, with the reason: it is never chosen, and it never
stops the other methods from being planned.
"""

import math
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional

from pydantic import ValidationError

from . import rules as rulebook
from .estimate import EstimateRequest, estimate
from .errors import UserError, describe_validation_error
from .estimate.search import FitResult, best_fit, smallest_tried
from .estimate.sharding import ENGINE_NAMES, OFFLOAD_NAMES, hardware_label, world_size
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
#: How the "needs other hardware" alternative starts (the nothing-fits summary quotes the rest).
OTHER_HARDWARE = "needs other hardware: fits on "
#: The 8-bit optimizers the fit search may choose, as a person reads them.
OPTIMIZER_NAMES = {"adamw_8bit": "8-bit AdamW", "paged_adamw_8bit": "paged 8-bit AdamW"}


class Candidate(NamedTuple):
    """One method configured for this profile, and where it fits (no estimate when it is unavailable).

    The planner's own working record, built from validated parts and never read from outside: a NamedTuple,
    whose class costs a cold plan next to nothing (a pydantic model or a dataclass: about 5 M instructions)."""

    method: Method
    settings: dict[str, Any]
    provenance: dict[str, str]
    request: Optional[EstimateRequest] = None
    fit: Optional[FitResult] = None
    estimate: Optional[Estimate] = None
    excluded_by: Optional[str] = None
    smallest: Optional[Estimate] = None
    unavailable: Optional[str] = None  # why the method cannot serve this profile at all


def settings_for(method: Method, facts: Facts) -> tuple[dict[str, Any], dict[str, str]]:
    """Training and data settings the rules give `method`, with the rule id behind each."""
    facts = facts._replace(**method_facts(method, []))
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
    if method.quantized and model.stored_quantization == "mxfp4":
        # transformers' merge_quantization_configs refuses a BitsAndBytesConfig for a checkpoint quantised with
        # Mxfp4Config; backends/loading.py loads such a checkpoint dequantised to 16-bit instead.
        return (f"{facts.model} is stored MXFP4-quantised, and transformers refuses a 4-bit bitsandbytes base for "
                f"such a checkpoint; it trains dequantised to 16-bit weights (lora)")
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
    effective = max(1, math.ceil(global_batch(settings, seq_len) / devices))
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
        kfold=settings.get("kfold") or None,
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


def global_batch(settings: dict[str, Any], seq_len: int) -> int:
    """Sequences per optimizer step over all devices, as the rules set it: effective_batch, or a batch given in
    tokens (effective_batch_tokens) as that many sequences of seq_len."""
    if settings.get("effective_batch_tokens"):
        return max(1, round(settings["effective_batch_tokens"] / seq_len))
    return settings.get("effective_batch", 16)


def train_tokens(profile: Profile, facts: Facts, settings: dict[str, Any], tokens_per_example: float) -> int:
    """Tokens the whole run trains on, times the epochs: what is not held out for validation, or under k-fold
    what `advisor execute` trains (backends/local.py): k fold models on (k-1)/k of the data each, then the final
    model on all of it, k times the data in all (early stopping may end a fold sooner: an upper bound).

    An unlabelled corpus is cut into sequences packed full, so it trains on its own token count; labelled
    examples take their mean length each (the data's, else half of seq_len).
    """
    tokens = facts.corpus_tokens if facts.corpus_stage else profile.examples * tokens_per_example
    folds = settings.get("kfold") or 0
    share = folds if folds else 1 - settings.get("validation_ratio", 0.2)  # k x (k-1)/k + 1 = k
    return int(tokens * share * settings.get("epochs", 3))


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
        "layout_trade_off": candidate.fit.layout_alternative is not None,
    }
    return [kind for kind, changed in kinds.items() if changed]


#: The top of the usual effective batch, 4-32 (002 § Training Configuration, the hyperparameter table), which
#: training.effective-batch quotes.
USUAL_EFFECTIVE_BATCH_MAX = 32


def fit_facts(candidate: Candidate, batch_size_asked: Optional[int] = None) -> dict[str, Any]:
    """The numbers the training and memory rules render for the configuration that fits: the global
    effective batch as it comes out (each device takes at least one sequence per step, so on more devices
    than the rules' `effective_batch` it is larger, and a --batch-size above it sets it), and the layout
    trade-off on several nodes; in sequences and tokens."""
    got = candidate.fit.request if candidate.fit else candidate.request
    effective_batch = global_batch(candidate.settings, candidate.request.seq_len)
    accumulation = candidate.fit.gradient_accumulation_steps if candidate.fit else 1
    devices = world_size(got.num_gpus, got.num_nodes)
    layout = f"micro-batch {got.batch_size} x {accumulation} accumulation step{'s' if accumulation > 1 else ''}"
    if devices > 1:
        layout += f" x {devices} devices"
    total = got.batch_size * accumulation * devices
    floor = ""
    if total > effective_batch and got.batch_size * accumulation == 1:
        floor = (f" The rules ask {effective_batch}, but each of the {devices} devices takes at least one sequence "
                 "per step.")
    elif total > effective_batch and batch_size_asked:
        above = (f", above the usual range: fewer, steadier steps; --batch-size "
                 f"{max(1, USUAL_EFFECTIVE_BATCH_MAX // devices)} or less keeps to it"
                 if total > USUAL_EFFECTIVE_BATCH_MAX else "")
        floor = f" The rules ask {effective_batch}; your --batch-size {batch_size_asked} per device sets it{above}."
    return {"effective_batch": total, "effective_batch_tokens": total * got.seq_len,
            "effective_batch_layout": layout, "effective_batch_floor": floor,
            "sharding_trade_off": layout_trade_off(candidate)}


def batch_size_facts(candidate: Candidate, batch_size_asked: Optional[int]) -> dict[str, Any]:
    """Where the micro-batch of --batch-size does not fit and the fit search took a smaller one: what it needs per
    device with the configuration's other settings (memory.batch-size-cut)."""
    got = candidate.fit.request if candidate.fit else None
    if not batch_size_asked or got is None or got.batch_size >= batch_size_asked:
        return {}
    memory = estimate(got.model_copy(update={"batch_size": batch_size_asked, "gradient_accumulation_steps": 1})).memory
    return {"batch_size_cut": True, "batch_size_asked": batch_size_asked,
            "batch_size_asked_gib": memory.peak_gib + memory.overhead_gib}


def layout_trade_off(candidate: Candidate) -> str:
    """Both layouts that fit several nodes with their speeds at the assumed and at a faster network, and how to
    switch, or '' (search._faster_layout chose the faster at the assumed one)."""
    other = candidate.fit.layout_alternative if candidate.fit else None
    if other is None:
        return ""
    got, config = candidate.fit.request, candidate.estimate.config
    chosen = _layout_name(got.sharding, got.offload, config.get("offloaded_gib_per_node", 0.0))
    rival = _layout_name(other.sharding, other.offload, other.offloaded_gib_per_node)
    if got.optimizer != other.optimizer:
        chosen += f" and {OPTIMIZER_NAMES.get(got.optimizer, 'AdamW')}"
        rival += f" and {OPTIMIZER_NAMES.get(other.optimizer, 'AdamW')}"
    assumed, fast = other.inter_node_gb_per_s_assumed, other.fast_inter_node_gb_per_s
    text = (f"{chosen} runs at ~{other.chosen_tokens_per_s:,.0f} tokens/s at the assumed {assumed * 8:g} Gb/s between "
            f"nodes (inter_node_gb_per_s_assumed {assumed:g} GB/s); {rival} also fits ({other.peak_gib:.1f} GiB per "
            f"device) at ~{other.tokens_per_s:,.0f} tokens/s. At {fast * 8:g} Gb/s (InfiniBand) they would run at "
            f"~{other.chosen_tokens_per_s_fast:,.0f} and ~{other.tokens_per_s_fast:,.0f} tokens/s.")
    if other.tokens_per_s_fast > other.chosen_tokens_per_s_fast:
        when = f"On such a network the {other.sharding} layout is the faster"
    else:
        when = (f"A faster network favours the {got.sharding} layout further; on a slower one the {other.sharding} "
                "layout may be the faster")
    optimizer = (f", training.hyperparameters.optimizer to '{other.optimizer}'" if got.optimizer != other.optimizer
                 else "")
    return (f"{text} {when}: set estimate.config.sharding to '{other.sharding}', estimate.config.offload to "
            f"'{other.offload}'{optimizer} in plan.json (`advisor estimate` with --sharding {other.sharding} "
            f"--offload {other.offload} prints its numbers).")


def _layout_name(sharding: str, offload: str, offloaded_gib_per_node: float) -> str:
    name = ENGINE_NAMES[sharding]
    if offload != "none":
        name += f" with {OFFLOAD_NAMES[offload]} ({offloaded_gib_per_node:,.0f} GiB per node)"
    return name


#: What an alternative's config shows of the request it fits with: the shape, the memory compromises and the nodes.
ALTERNATIVE_CONFIG = {"batch_size", "seq_len", "gradient_checkpointing", "optimizer", "sharding", "offload", "num_nodes"}


def smallest_fitting_hardware(candidates: list[Candidate], profile: Profile, model: ModelEntry,
                              data_report: Any) -> Optional[Alternative]:
    """The least total GPU memory (catalog GPU x count, one node) on which one of `candidates` fits
    (`least_compromised`: at the whole sequence length, without CPU offload where some hardware allows it)."""
    asked = (profile.gpu_memory_gib or resolve_gpu(profile.gpu).memory_gib) * world_size(profile.num_gpus,
                                                                                        profile.num_nodes)
    found = least_compromised(candidates, catalog_hardware(profile, model, more_memory_than=asked), data_report,
                              offload_last=True)
    return hardware_row(found[0]) if found else None


def catalog_hardware(profile: Profile, model: ModelEntry,
                     more_memory_than: float = 0.0) -> Iterator[tuple[Profile, ModelEntry]]:
    """`profile` on each catalog GPU x 1, 2, 4, 8 (one node) with more total memory than given, least memory first."""
    options = sorted(((gpu, count) for gpu in gpus().values() if gpu.cuda for count in (1, 2, 4, 8)),
                     key=lambda option: (option[0].memory_gib * option[1], option[1]))
    for gpu, count in options:
        if gpu.memory_gib * count > more_memory_than:
            yield profile.model_copy(update={"gpu": gpu.id, "num_gpus": count, "num_nodes": 1,
                                             "gpu_memory_gib": None}), model


def smaller_fitting_model(candidates: list[Candidate], profile: Profile, model: ModelEntry,
                          data_report: Any) -> Optional[Alternative]:
    """The largest catalog model of the same kind, smaller than `model`, on which one of `candidates` fits this
    hardware at the whole sequence length (offload or not: on this hardware it is the price of the larger model)."""
    found = least_compromised(candidates, smaller_models(profile, model), data_report, offload_last=False)
    if found is None:
        return None
    trial, entry = found
    return Alternative(approach=trial.method.approach, method=trial.method.name, fits=True,
                       peak_gib=round(trial.estimate.memory.peak_gib, 2),
                       why_not=f"a smaller model that fits this hardware: {entry.id} "
                               f"({entry.architecture.total_params() / 1e9:.1f}B parameters)",
                       config={"model": entry.id, **trial.fit.request.model_dump(include=ALTERNATIVE_CONFIG)})


def smaller_models(profile: Profile, model: ModelEntry) -> Iterator[tuple[Profile, ModelEntry]]:
    """`profile` with each catalog model of `model`'s kind smaller than it, largest first."""
    size = model.architecture.total_params()
    smaller = sorted((entry for entry in models().values()
                      if entry.architecture.kind == model.architecture.kind and entry.architecture.total_params() < size),
                     key=lambda entry: -entry.architecture.total_params())
    return ((profile.model_copy(update={"model": entry.id}), entry) for entry in smaller)


def least_compromised(candidates: list[Candidate], options: Iterable[tuple[Profile, ModelEntry]], data_report: Any,
                      offload_last: bool, accept: Callable[[Candidate], bool] = lambda trial: True,
                      facts_update: Optional[dict[str, Any]] = None) -> Optional[tuple[Candidate, ModelEntry]]:
    """The first of `options` (profile and model, in order) on which one of `candidates` fits at the whole sequence
    length (a fit that cuts sequences is no fit for a suggestion) and that `accept` takes. With `offload_last`, one
    without CPU offload first, else the first with it (offload needs CPU memory the plan can only assume, and slows
    every step). `facts_update`: what the plan's facts hold beyond the profile's (a corpus stage's)."""
    labels = len(data_report.stats.labels) if data_report is not None and data_report.stats.labels else None
    offloaded: Optional[tuple[Candidate, ModelEntry]] = None
    for profile, model in options:
        facts = derive_facts(profile, model, data_labels=labels)._replace(**(facts_update or {}))
        for candidate in candidates:
            if candidate.excluded_by:
                continue
            trial = configure(candidate.method, profile, model, facts, data_report, None)
            if trial.fit is None or trial.fit.request.seq_len < trial.request.seq_len or not accept(trial):
                continue
            if trial.fit.request.offload == "none" or not offload_last:
                return trial, model
            offloaded = offloaded or (trial, model)
    return offloaded


def hardware_row(trial: Candidate) -> Alternative:
    """`trial` as the alternatives' "needs other hardware" row, with the numbers and the compromises it fits with."""
    got, result = trial.fit.request, trial.estimate
    on = hardware_label(got.num_gpus, got.num_nodes, got.gpu.id)
    time = f"; {result.time.hours_text(digits=1)}" if result.time and result.time.hours else ""
    config = got.model_dump(include=ALTERNATIVE_CONFIG)
    if got.offload != "none":
        config["offloaded_gib_per_node"] = result.config.get("offloaded_gib_per_node")
    return Alternative(
        approach=trial.method.approach, method=trial.method.name, fits=True, peak_gib=round(result.memory.peak_gib, 2),
        why_not=(f"{OTHER_HARDWARE}{on} ({got.gpu.name}) at all {got.seq_len} tokens, "
                 f"{result.memory.peak_gib + result.memory.overhead_gib:.1f} of {result.device_memory_gib:.1f} GiB "
                 f"per device, with {shape_summary(result.config, sequences=False)}{time}"),
        config={"gpu": got.gpu.id, "num_gpus": got.num_gpus, **config})


def shape_summary(config: dict[str, Any], sequences: bool = True) -> str:
    """An estimate's shape and memory compromises, for a person: 'gradient checkpointing, micro-batch 1 x 16
    accumulation steps, paged 8-bit AdamW, FSDP full sharding, sequences of 1024 tokens'."""
    parts = ["gradient checkpointing"] if config.get("gradient_checkpointing") else []
    accumulation = config.get("gradient_accumulation_steps", 1)
    parts.append(f"micro-batch {config.get('batch_size')}"
                 + (f" x {accumulation} accumulation steps" if accumulation > 1 else ""))
    if config.get("optimizer") in OPTIMIZER_NAMES:
        parts.append(OPTIMIZER_NAMES[config["optimizer"]])
    if config.get("sharding") in ("fsdp", "hybrid", "zero2", "zero3"):
        parts.append(ENGINE_NAMES[config["sharding"]])
    if config.get("offload", "none") != "none":
        offloaded = config.get("offloaded_gib_per_node")
        parts.append(OFFLOAD_NAMES[config["offload"]] + (f" ({offloaded:,.0f} GiB per node)" if offloaded else ""))
    if sequences:
        parts.append(f"sequences of {config.get('seq_len')} tokens")
    return ", ".join(parts)
