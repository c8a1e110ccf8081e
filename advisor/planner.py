"""The planner: Profile -> Plan, by running the rules stage by stage and asking the estimator.

Stages: approach (prompting / RAG / fine-tune), method (exclude by metadata,
select preferred traits), training settings per candidate method, the fit
search for each (estimator), then data, memory and risk rules for the chosen
one. Every rule that fires for the chosen plan is in `rationale`, in order.
The CLI, the TUI and the demo call `plan_for`; candidates.py configures and
fit-searches each method.
"""

from __future__ import annotations

from typing import Any, Optional

from . import rules as rulebook
from .candidates import (
    Candidate, configure, fit_change_kinds, method_hyperparameters, refusal, smallest_fitting_hardware,
)
from .errors import UserError
from .facts import Facts, derive_facts, method_facts
from .knowledge_base import method_preference, resolve_model, tasks
from .manager import all_methods, get_method
from .methods import Method
from .models import (
    Alternative, DataHandling, ParamGroup, Plan, Profile, Rationale, Recommendation, Training,
    TrainingHyperparameters, validate_profile,
)
from .rules import Rule

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


def plan_for(profile: Profile) -> Plan:
    """The plan for `profile`, after validating profile.data and filling in what the person did not say."""
    if not profile.data:
        return make_plan(profile)
    from .data import profile_hints, validate_file

    report = validate_file(profile.data)
    hints = {key: value for key, value in profile_hints(report).items() if key not in profile.model_fields_set}
    return make_plan(validate_profile(profile.model_dump(include=profile.model_fields_set) | hints), report)


def usable_methods(methods: dict[str, Method], profile: Profile, model: Any, facts: Facts,
                   trace: Trace) -> dict[str, Method]:
    """The methods that can train this model; the others are named in a warning (an explicit --method: an error)."""
    usable = {}
    for name, method in methods.items():
        reason = refusal(method, model, facts)
        if reason is None:
            usable[name] = method
        elif name == profile.method:
            raise UserError(f"--method {name} cannot train {profile.model}: {reason}")
        else:
            trace.warnings.append(f"{name} left out for {profile.model}: {reason}")
    return usable


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
    methods = usable_methods(all_methods(), profile, model, facts, trace)
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
