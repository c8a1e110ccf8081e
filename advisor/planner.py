"""The planner: Profile -> Plan, by running the rules stage by stage and asking the estimator.

Stages: approach (prompting / RAG / fine-tune), method (exclude by metadata,
select preferred traits), training settings per candidate method, the fit
search for each (estimator), then data, memory and risk rules for the chosen
one. Every rule that fires for the chosen plan is in `rationale`, in order.
The CLI, the TUI and the demo all call `make_plan`.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

from . import rules as rulebook
from .estimate import EstimateRequest
from .estimate.search import FitResult, best_fit
from .facts import Facts, derive_facts
from .knowledge_base import ModelEntry, gpus, method_preference, resolve_gpu, resolve_model, tasks
from .manager import all_methods, get_method
from .methods import Method
from .models import (
    Alternative, DataHandling, Estimate, ParamGroup, Plan, Profile, Rationale, Recommendation,
    Training, TrainingHyperparameters, validate_profile,
)
from .rules import Rule, Settings

#: Plan settings that map onto a method's own hyperparameter fields.
METHOD_SETTING_FIELDS = {"lora_rank": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
                         "num_virtual_tokens": "num_virtual_tokens", "trainable_layers": "trainable_layers"}


class Trace:
    """The rationale and warnings collected while planning."""

    def __init__(self) -> None:
        self.rationale: list[Rationale] = []
        self.warnings: list[str] = []

    def record(self, rule: Rule, facts: Facts) -> None:
        message = rule.explain(facts)
        self.rationale.append(Rationale(rule=rule.id, message=message, source=rule.source))
        if rule.warn:
            self.warnings.append(message)


class Candidate(BaseModel):
    """One method configured for this profile, and where it fits."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    method: Method
    settings: dict[str, Any]
    provenance: dict[str, str]
    request: EstimateRequest
    fit: Optional[FitResult]
    estimate: Estimate
    excluded_by: Optional[str] = None


def plan_for(profile: Profile) -> Plan:
    """The plan for `profile`, after validating profile.data and filling in what the person did not say."""
    if not profile.data:
        return make_plan(profile)
    from .data import profile_hints, validate_file

    report = validate_file(profile.data)
    hints = {key: value for key, value in profile_hints(report).items() if key not in profile.model_fields_set}
    return make_plan(validate_profile(profile.model_dump(include=profile.model_fields_set) | hints), report)


def make_plan(profile: Profile, data_report: Any = None) -> Plan:
    """The plan for `profile`. `data_report` is the validation report of profile.data, if any."""
    model = resolve_model(profile.model)
    labels = len(data_report.stats.labels) if data_report is not None and data_report.stats.labels else None
    facts = derive_facts(profile, model, data_labels=labels)
    trace = Trace()
    if data_report is not None:
        trace.warnings.extend(data_report.warnings)

    approach, complements = decide_approach(facts, trace)
    fine_tuning = approach == "fine_tune" or profile.method is not None
    methods = all_methods()
    # Method rules explain a fine-tune; a prompting/RAG plan ranks methods only for its alternatives.
    order, excluded, ranked_by = rank_methods(methods, facts, trace if fine_tuning else Trace(), profile.method)
    candidates = {name: configure(methods[name], profile, model, facts, data_report, excluded.get(name))
                  for name in methods}

    if not fine_tuning:
        return Plan(
            profile=profile,
            recommendation=Recommendation(approach=approach, complements=complements,
                                          summary=summarise_without_training(approach, trace)),
            rationale=trace.rationale,
            alternatives=alternatives(candidates, chosen=None, approach=approach, ranked_by=ranked_by),
            warnings=trace.warnings,
        )
    if approach in ("prompting", "rag"):
        trace.warnings.append(f"--method {profile.method} overrides the rules' recommendation: {approach}")

    chosen, changes = choose(order, candidates)
    method = chosen.method
    facts = facts.model_copy(update=method_facts(method, fit_change_kinds(chosen) + changes))
    for stage in ("training", "data", "memory", "risk"):
        for rule in rulebook.matching(stage, facts):
            trace.record(rule, facts)
    rows = alternatives(candidates, chosen=method.name, approach=method.approach, ranked_by=ranked_by)
    if "nothing_fits" in changes:
        # Contract: a method that does not fit is never the recommendation. Say so, keep its
        # estimate for the numbers, and show the smallest hardware on which something fits.
        bigger = smallest_fitting_hardware([candidates[name] for name in order], profile, model, data_report)
        return Plan(
            profile=profile,
            recommendation=Recommendation(approach=method.approach, method=None, complements=complements,
                                          summary=summarise_nothing_fits(method, chosen, facts, bigger)),
            rationale=trace.rationale,
            estimate=chosen.estimate,
            alternatives=([bigger] if bigger else []) + rows,
            warnings=trace.warnings,
        )
    return Plan(
        profile=profile,
        recommendation=Recommendation(
            approach=method.approach, method=method.name, complements=complements,
            summary=summarise(method, chosen, facts, complements),
        ),
        rationale=trace.rationale,
        estimate=chosen.estimate,
        alternatives=rows,
        training=build_training(chosen, facts, data_report),
        warnings=trace.warnings,
    )


# -- stage: approach ----------------------------------------------------------------
def decide_approach(facts: Facts, trace: Trace) -> tuple[str, list[str]]:
    """The first approach rule that sets an approach decides; complements accumulate."""
    approach: Optional[str] = None
    complements: list[str] = []
    for rule in rulebook.matching("approach", facts):
        if rule.approach and approach is not None:
            continue
        approach = approach or rule.approach
        complements += [c for c in rule.complements if c not in complements]
        trace.record(rule, facts)
    return approach or "fine_tune", complements


# -- stage: method ------------------------------------------------------------------
def rank_methods(methods: dict[str, Method], facts: Facts, trace: Trace,
                 forced: Optional[str] = None) -> tuple[list[str], dict[str, str], str]:
    """Candidate names in order of preference, which rule excluded each other method,
    and what put the first candidate first (a rule id, or --method)."""
    if forced:
        get_method(forced)  # one clear line for an unknown name
        return [forced], {}, "--method"
    excluded: dict[str, str] = {}
    selected: list[str] = []
    ranked_by = "knowledge/methods.toml preference"
    for rule in rulebook.matching("method", facts):
        if rule.exclude:
            hits = [name for name, m in methods.items() if rule.exclude.matches(m) and name not in excluded]
            if hits:
                excluded.update({name: rule.id for name in hits})
                trace.record(rule, facts)
        elif rule.select and not selected:
            hits = [name for name, m in methods.items() if rule.select.matches(m) and name not in excluded]
            if hits:
                selected = by_preference(hits, methods)
                ranked_by = rule.id
                trace.record(rule, facts)
    rest = [name for name in by_preference(list(methods), methods) if name not in excluded and name not in selected]
    return selected + rest, excluded, ranked_by


def by_preference(names: list[str], methods: dict[str, Method]) -> list[str]:
    """knowledge/methods.toml order first; methods it does not name follow, most capable first."""
    preference = method_preference()

    def key(name: str) -> tuple:
        return (preference.index(name) if name in preference else len(preference), -methods[name].capacity, name)

    return sorted(names, key=key)


def method_facts(method: Method, fit_changes: list[str]) -> dict[str, Any]:
    return {
        "approach": method.approach, "method": method.name, "method_family": method.family,
        "method_mergeable": method.mergeable, "method_quantized": method.quantized,
        "method_capacity": method.capacity, "method_settings": list(method.Hyperparameters.model_fields),
        "fit_changes": fit_changes,
    }


# -- settings and the fit search for one method --------------------------------------
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
    rate = {"method.low": low, "method.high": high, "method.mid": math.sqrt(low * high)}[point]
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


def configure(method: Method, profile: Profile, model: ModelEntry, facts: Facts, data_report: Any,
              excluded_by: Optional[str]) -> Candidate:
    settings, provenance = settings_for(method, facts)
    hp = method.hyperparameters(method_hyperparameters(method, settings))
    seq_len = sequence_length(profile, model, data_report)
    effective = settings.get("effective_batch", 16)
    gpu = resolve_gpu(profile.gpu)
    mean_tokens = getattr(getattr(getattr(data_report, "stats", None), "token_lengths", None), "mean", None)
    train_examples = profile.examples * (1 - settings.get("validation_ratio", 0.2))
    request = EstimateRequest(
        architecture=model.architecture,
        footprint=method.footprint(model.architecture, hp),
        precision=settings.get("precision", "bf16"),
        batch_size=profile.batch_size or effective,
        seq_len=seq_len,
        num_gpus=profile.num_gpus,
        sharding="ddp" if profile.num_gpus > 1 else "none",
        head="classification" if facts.head == "classification" else "lm",
        num_labels=facts.data_labels or 2,
        gpu=gpu,
        device_memory_gib=profile.gpu_memory_gib,
        tasks=profile.tasks,
        train_tokens=int(train_examples * settings.get("epochs", 3) * (mean_tokens or seq_len / 2)),
        price_per_hour=profile.price_per_hour,
    )
    fit = best_fit(request, effective_batch=max(effective, request.batch_size))
    from .estimate import estimate as estimate_request

    return Candidate(method=method, settings=settings, provenance=provenance, request=request, fit=fit,
                     estimate=fit.estimate if fit else estimate_request(request), excluded_by=excluded_by)


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
        "sharding": got.sharding != asked.sharding,
    }
    return [kind for kind, changed in kinds.items() if changed]


# -- choosing -----------------------------------------------------------------------
def choose(order: list[str], candidates: dict[str, Candidate]) -> tuple[Candidate, list[str]]:
    """The first candidate (in preference order) that fits; what changed to get there."""
    preferred = candidates[order[0]]
    for name in order:
        candidate = candidates[name]
        if candidate.fit is None:
            continue
        if name == preferred.method.name:
            return candidate, []
        kind = "quantized" if candidate.method.quantized and not preferred.method.quantized else "method"
        return candidate, [kind]
    return preferred, ["nothing_fits"]


def smallest_fitting_hardware(candidates: list[Candidate], profile: Profile, model: ModelEntry,
                              data_report: Any) -> Optional[Alternative]:
    """The least total GPU memory (catalog GPU x count) on which one of `candidates` fits, in order."""
    options = sorted(((gpu, count) for gpu in gpus().values() if gpu.cuda for count in (1, 2, 4, 8)),
                     key=lambda option: (option[0].memory_gib * option[1], option[1]))
    labels = len(data_report.stats.labels) if data_report is not None and data_report.stats.labels else None
    for gpu, count in options:
        if gpu.memory_gib * count <= (profile.gpu_memory_gib or resolve_gpu(profile.gpu).memory_gib) * profile.num_gpus:
            continue
        elsewhere = profile.model_copy(update={"gpu": gpu.id, "num_gpus": count, "gpu_memory_gib": None})
        facts = derive_facts(elsewhere, model, data_labels=labels)
        for candidate in candidates:
            if candidate.excluded_by:
                continue
            trial = configure(candidate.method, elsewhere, model, facts, data_report, None)
            if trial.fit is not None:
                config = trial.fit.request.model_dump(include={"batch_size", "seq_len", "gradient_checkpointing",
                                                               "optimizer", "sharding"})
                return Alternative(approach=candidate.method.approach, method=candidate.method.name, fits=True,
                                   peak_gib=round(trial.estimate.memory.peak_gib, 2),
                                   why_not=f"needs other hardware: fits on {count} x {gpu.id} ({gpu.name})",
                                   config={"gpu": gpu.id, "num_gpus": count, **config})
    return None


def summarise_nothing_fits(method: Method, chosen: Candidate, facts: Facts, bigger: Optional[Alternative]) -> str:
    text = (f"Nothing fits {facts.device_memory_gib:.1f} GiB x {facts.num_gpus} on {facts.gpu}: {method.name} on "
            f"{facts.model} needs {chosen.estimate.memory.peak_gib:.1f} GiB per device as asked, and no compromise "
            f"(checkpointing, micro-batch 1, 8-bit optimizer, sharding, shorter sequences, another method) brings "
            f"it within the device. Do not fine-tune on this hardware; prompt the base model or use RAG meanwhile.")
    if bigger:
        text += (f" The smallest configuration that fits: {bigger.method} on {bigger.config['num_gpus']} x "
                 f"{bigger.config['gpu']}.")
    return text


# -- the plan's parts ----------------------------------------------------------------
def build_training(chosen: Candidate, facts: Facts, data_report: Any) -> Training:
    settings, provenance = chosen.settings, chosen.provenance
    method = chosen.method
    request = chosen.fit.request if chosen.fit else None
    groups = [ParamGroup(name="new" if method.approach == "peft" else "pretrained",
                         learning_rate=settings["learning_rate"], rule=provenance["learning_rate"])]
    if "new_layer_learning_rate" in settings and method.approach != "peft":
        groups.append(ParamGroup(name="new", learning_rate=settings["new_layer_learning_rate"],
                                 rule=provenance["new_layer_learning_rate"]))
    hyperparameters = TrainingHyperparameters(
        learning_rate=settings["learning_rate"],
        param_groups=groups,
        epochs=settings.get("epochs", 3),
        batch_size=request.batch_size if request else settings.get("effective_batch", 16),
        gradient_accumulation_steps=chosen.fit.gradient_accumulation_steps if chosen.fit else 1,
        seq_len=request.seq_len if request else chosen.estimate.config.get("seq_len", 512),
        warmup_ratio=settings.get("warmup_ratio", 0.1),
        scheduler=settings.get("scheduler", "cosine"),
        weight_decay=settings.get("weight_decay", 0.0),
        gradient_checkpointing=bool(request and (request.gradient_checkpointing
                                                 or request.footprint.forces_gradient_checkpointing)),
        optimizer=request.optimizer if request else "adamw",
        early_stopping_patience=settings.get("early_stopping_patience"),
        eval_metric=tasks()[facts.task].eval_metric,
        method=method_hyperparameters(method, settings),
    )
    data = DataHandling(
        validation_ratio=settings.get("validation_ratio", 0.2),
        kfold=settings.get("kfold"),
        stratify=settings.get("stratify", False),
        seq_len=hyperparameters.seq_len,
    )
    return Training(method=method.name, hyperparameters=hyperparameters,
                    precision=settings.get("precision", "bf16"), data=data)


def alternatives(candidates: dict[str, Candidate], chosen: Optional[str], approach: str,
                 ranked_by: str) -> list[Alternative]:
    rows = []
    for name, candidate in candidates.items():
        if name == chosen:
            continue
        estimate = candidate.estimate
        if candidate.excluded_by:
            why = f"excluded: {rulebook.rule(candidate.excluded_by).message.split(':')[0]} ({candidate.excluded_by})"
        elif candidate.fit is None:
            why = (f"does not fit: needs {estimate.memory.peak_gib + estimate.memory.overhead_gib:.1f} GiB "
                   f"of {estimate.device_memory_gib:.1f} GiB even with every compromise")
        elif approach in ("prompting", "rag"):
            why = f"the rules recommend {approach} for this profile"
        else:
            why = f"fits, but {chosen} ranks first ({ranked_by})"
        config = candidate.fit.request.model_dump(include={"batch_size", "seq_len", "gradient_checkpointing",
                                                           "optimizer", "sharding"}) if candidate.fit else {}
        rows.append(Alternative(approach=candidate.method.approach, method=name, fits=candidate.fit is not None,
                                peak_gib=round(estimate.memory.peak_gib, 2), why_not=why, config=config))
    return rows


def summarise_without_training(approach: str, trace: Trace) -> str:
    reason = trace.rationale[0].message if trace.rationale else ""
    what = {"prompting": "Do not fine-tune: prompt the base model.",
            "rag": "Do not fine-tune for this: use retrieval-augmented generation (RAG)."}[approach]
    return f"{what} {reason}"


def summarise(method: Method, chosen: Candidate, facts: Facts, complements: list[str]) -> str:
    memory = chosen.estimate.memory
    description = method.description.rstrip(".")
    first_word = description.split()[0]
    if first_word[1:].islower():  # "Full fine-tuning: ..." reads "with full fine-tuning: ..."; "LoRA" stays
        description = description[0].lower() + description[1:]
    text = (f"Fine-tune {facts.model} with {description}. Peak memory {memory.peak_gib:.1f} GiB per device "
            f"of {chosen.estimate.device_memory_gib:.1f} GiB on {facts.gpu}.")
    if complements:
        text += f" Complement it with {', '.join(complements)}."
    return text
