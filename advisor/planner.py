"""The planner: Profile -> Plan, by running the rules stage by stage and asking the estimator.

Stages: approach (prompting / RAG / fine-tune), method (exclude by metadata,
select preferred traits; a method unavailable for this model, task or GPU is
never a candidate, and --method refuses it with the reason), training
settings per candidate method, the fit
search for each (estimator), then data, memory and risk rules for the chosen
one. Every rule that fires for the chosen plan is in `rationale`, in order,
except a settings rule whose every setting a later rule overrode. Among the
methods that fit, one that keeps the whole sequence length (QLoRA for LoRA)
comes before one that only fits by cutting sequences. With a large unlabelled
corpus the plan has two `stages`: continued pre-training, then task tuning.
The CLI, the TUI and the demo call `plan_for`; candidates.py configures and
fit-searches each method.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from . import rules as rulebook
from .candidates import (
    ALTERNATIVE_CONFIG, Candidate, configure, fit_change_kinds, method_hyperparameters, smaller_fitting_model,
    smallest_fitting_hardware,
)
from .errors import UserError
from .estimate.sharding import hardware_label
from .facts import CPT_MIN_TOKENS, Facts, derive_facts, method_facts
from .knowledge_base import ModelEntry, method_preference, resolve_model, tasks
from .manager import get_method, usable_methods
from .methods import Method
from .models import (
    Alternative, DataHandling, ParamGroup, Plan, PlanStage, Profile, Rationale, Recommendation, Training,
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
        self.rationale.append(Rationale(rule=rule.id, message=message, source=rule.citation()))
        if rule.warn:
            self.warnings.append(message)


def in_effect(rules: list[Rule]) -> list[Rule]:
    """`rules` without those whose every setting a later rule in the list overrode."""
    kept = []
    for index, rule in enumerate(rules):
        keys = set((rule.set.model_dump(exclude_none=True) if rule.set else {}))
        later = {key for other in rules[index + 1:] if other.set for key in other.set.model_dump(exclude_none=True)}
        if not keys or not keys <= later:
            kept.append(rule)
    return kept


def label_facts(data_report: Any) -> dict[str, Optional[int]]:
    """How many labels the data has, and how many rows the rarest one has."""
    labels = data_report.stats.labels if data_report is not None and data_report.stats.labels else None
    return {"data_labels": len(labels) if labels else None,
            "data_min_label_count": min(labels.values()) if labels else None}


def plan_for(profile: Profile) -> Plan:
    """The plan for `profile`, after validating profile.data and filling in what the person did not say."""
    if not profile.data:
        return make_plan(profile)
    from .data import model_token_counter, profile_hints, validate_file

    report = validate_file(profile.data, tokenizer=model_token_counter(profile.model))
    hints = {key: value for key, value in profile_hints(report).items() if key not in profile.model_fields_set}
    return make_plan(validate_profile(profile.model_dump(include=profile.model_fields_set) | hints), report)


def make_plan(profile: Profile, data_report: Any = None) -> Plan:
    """The plan for `profile`. `data_report` is the validation report of profile.data, if any.

    With no labelled examples but a large unlabelled corpus, the plan is continued pre-training on it.
    """
    stated = profile
    model = resolve_model(profile.model)
    corpus_only = profile.examples == 0 and (profile.corpus_tokens or 0) >= CPT_MIN_TOKENS
    if corpus_only:
        profile = corpus_profile(profile)
    facts = derive_facts(profile, model, **label_facts(data_report)).model_copy(update={"corpus_only": corpus_only})
    trace = Trace()
    if data_report is not None:
        trace.warnings.extend(data_report.warnings)
    assumptions = assumed(facts) + token_counting(data_report, profile.model)
    trace.warnings.extend(assumptions)  # also a warning: a plan for other hardware may not fit yours

    approach, complements = decide_approach(facts, trace)
    fine_tuning = approach == "fine_tune" or profile.method is not None
    methods = methods_for_objective(profile, model)
    # Method rules explain a fine-tune; a prompting/RAG plan ranks methods only for its alternatives.
    order, excluded, ranked_by = rank_methods(methods, facts, trace if fine_tuning else Trace(), profile.method)
    candidates = {name: configure(methods[name], profile, model, facts, data_report, excluded.get(name))
                  for name in methods}
    if profile.method and candidates[profile.method].unavailable:
        raise UserError(f"--method {profile.method} cannot be planned for {profile.model} "
                        f"(task {profile.task}, gpu {profile.gpu}): {candidates[profile.method].unavailable}")
    order = [name for name in order if not candidates[name].unavailable]
    if not order:
        reasons = "; ".join(f"{name}: {candidate.unavailable or f'excluded by {candidate.excluded_by}'}"
                            for name, candidate in candidates.items())
        raise UserError(f"no method can train {profile.model} for task {profile.task}: {reasons}")

    if not fine_tuning:
        return Plan(
            profile=stated,
            recommendation=Recommendation(approach=approach, complements=complements,
                                          summary=summarise_without_training(approach, trace, complements)),
            rationale=trace.rationale,
            alternatives=alternatives(candidates, chosen=None, approach=approach, ranked_by=ranked_by, facts=facts),
            warnings=trace.warnings,
            assumptions=assumptions,
        )
    if approach in ("prompting", "rag"):
        trace.warnings.append(f"--method {profile.method} overrides the rules' recommendation: {approach}")

    chosen, changes = choose(order, candidates)
    method = chosen.method
    facts = facts.model_copy(update=method_facts(method, fit_change_kinds(chosen) + changes)
                             | sequence_facts(chosen, profile, data_report))
    for stage in ("training", "data", "memory", "risk"):
        matched = rulebook.matching(stage, facts)
        for rule in in_effect(matched) if stage in ("training", "data") else matched:
            trace.record(rule, facts)
    rows = alternatives(candidates, chosen=method.name, approach=method.approach, ranked_by=ranked_by, facts=facts)
    if "nothing_fits" in changes:
        # Contract: a method that does not fit is never the recommendation. Say so, keep its
        # estimate for the numbers, and show the smallest hardware, and a smaller model, that fit.
        ranked = [candidates[name] for name in order]
        bigger = smallest_fitting_hardware(ranked, profile, model, data_report)
        smaller = smaller_fitting_model(ranked, profile, model, data_report)
        return Plan(
            profile=stated,
            recommendation=Recommendation(approach=method.approach, method=None, complements=complements,
                                          summary=summarise_nothing_fits(method, chosen, facts, bigger, smaller)),
            rationale=trace.rationale,
            estimate=chosen.estimate,
            alternatives=[row for row in (bigger, smaller) if row] + rows,
            warnings=trace.warnings,
            assumptions=assumptions,
        )
    training, split_notes = feasible_split(build_training(chosen, facts, data_report), facts)
    stages = two_stages(chosen, training, profile, model, facts) if facts.two_stage else []
    return Plan(
        profile=stated,
        recommendation=Recommendation(
            approach=method.approach, method=method.name, complements=complements,
            summary=summarise(method, chosen, facts, complements),
        ),
        rationale=trace.rationale,
        estimate=chosen.estimate,
        alternatives=rows,
        training=training,
        warnings=trace.warnings + split_notes + prompts_cut(data_report, training.hyperparameters.seq_len),
        stages=stages,
        assumptions=assumptions,
    )


def methods_for_objective(profile: Profile, model: ModelEntry) -> dict[str, Method]:
    """The usable methods that train on the profile's kind of data: preference pairs, or supervised examples."""
    objective = "preference" if profile.task == "preference" else "supervised"
    if profile.method is not None and get_method(profile.method).objective != objective:
        wanted = {"preference": "preference pairs (chosen/rejected)", "supervised": "supervised examples"}
        raise UserError(f"method '{profile.method}' trains on {wanted[get_method(profile.method).objective]} and "
                        f"task '{profile.task}' on {wanted[objective]}: choose another --method or --task")
    usable = usable_methods(model.architecture, forced=profile.method)
    return {name: method for name, method in usable.items() if method.objective == objective}


def assumed(facts: Facts) -> list[str]:
    """What the plan took for granted because the profile did not say it."""
    if facts.gpu_given:
        return []
    return [f"No --gpu given: planned for {hardware_label(facts.num_gpus, facts.num_nodes, facts.gpu)} "
            f"({facts.gpu_name}, {facts.device_memory_gib:.0f} GiB), the default; pass --gpu (see `advisor gpus`) "
            "for your hardware."]


def token_counting(data_report: Any, model: str) -> list[str]:
    """How the data's token lengths, the seq_len's origin, were counted, where the count is not the run's."""
    lengths = getattr(data_report.stats, "token_lengths", None) if data_report is not None else None
    if lengths is None:
        return []
    if lengths.method == "estimate":
        return [f"Token lengths of your data are estimated as ceil(UTF-8 bytes / 4) (p95 {lengths.p95}): no "
                f"tokenizer.json of {model} in its directory or the Hugging Face cache. Real counts can differ "
                "several-fold (digits, code, other languages); `advisor execute --dry-run` checks seq_len with the "
                "real tokenizer."]
    wrapper = {"chat": "chat template", "alpaca": "prompt template", "preference": "chat or prompt template"}
    if data_report.format in wrapper:
        return [f"Token lengths of your data were counted with {model}'s tokenizer (p95 {lengths.p95}) on the text "
                f"alone: the {wrapper[data_report.format]} the run wraps each record in adds tokens per record."]
    return []


def prompts_cut(data_report: Any, seq_len: int) -> list[str]:
    """A warning when the data's longest prompt fills the plan's seq_len: the preflight refuses such a record."""
    lengths = getattr(data_report.stats, "token_lengths", None) if data_report is not None else None
    if lengths is None or lengths.prompt_max is None or lengths.prompt_max < seq_len:
        return []
    counted = "counted with the model's tokenizer" if lengths.method == "tokenizer" else "estimated"
    return [f"your data's longest prompt takes {lengths.prompt_max} tokens ({counted}, before the template) and "
            f"fills the plan's seq_len {seq_len}: truncation leaves such a record no response to learn from and "
            f"`advisor execute` refuses it; pass --seq-len above {lengths.prompt_max} plus the template, or shorten "
            f"those prompts (`advisor validate DATA --seq-len {seq_len}` counts them)"]


def sequence_facts(chosen: Candidate, profile: Profile, data_report: Any) -> dict[str, Any]:
    """The sequence length asked, where it came from, and the one that fits (memory.shorter-sequences)."""
    origin = ("the --seq-len you asked" if profile.seq_len
              else "your data's 95th-percentile length" if data_report is not None
              and getattr(data_report.stats, "token_lengths", None)
              else f"the {profile.task} default length")
    fitted = chosen.fit.request.seq_len if chosen.fit else None
    return {"seq_len_asked": chosen.request.seq_len, "seq_len_fit": fitted, "seq_len_origin": origin}


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
    """The first candidate (in preference order) that fits; what changed to get there.

    Cutting sequences below the length asked costs the result more than another method of the same
    family does (QLoRA keeps LoRA's update at 4-bit base precision), so when the first that fits cuts
    sequences, a same-family method (or LoRA / QLoRA, for a full fine-tune) that keeps more of the
    length comes first.
    """
    preferred = candidates[order[0]]
    fitting = [candidates[name] for name in order if candidates[name].fit is not None]
    if not fitting:
        return preferred, ["nothing_fits"]
    candidate = fitting[0]
    if cuts_sequences(candidate):
        related = [other for other in fitting
                   if other.method.family in (preferred.method.family, "reparameterisation")]
        longest = max(related, key=lambda other: other.fit.request.seq_len, default=candidate)
        if longest.fit.request.seq_len > candidate.fit.request.seq_len:
            candidate = longest
    if candidate is preferred:
        return candidate, []
    kind = "quantized" if candidate.method.quantized and not preferred.method.quantized else "method"
    return candidate, [kind]


def cuts_sequences(candidate: Candidate) -> bool:
    return candidate.fit is not None and candidate.fit.request.seq_len < candidate.request.seq_len


def summarise_nothing_fits(method: Method, chosen: Candidate, facts: Facts, bigger: Optional[Alternative],
                           smaller: Optional[Alternative]) -> str:
    least = chosen.smallest or chosen.estimate
    meanwhile = ("use RAG for the knowledge and prompt the base model for the rest meanwhile"
                 if facts.knowledge_goal else "prompt the base model meanwhile")
    text = (f"Nothing fits {facts.device_memory_gib:.1f} GiB per device on "
            f"{hardware_label(facts.num_gpus, facts.num_nodes, facts.gpu)}: {method.name} on "
            f"{facts.model} needs {least.memory.peak_gib + least.memory.overhead_gib:.1f} GiB per device even at its "
            f"smallest (checkpointing, micro-batch 1, 8-bit optimizer, sharding, sequences of "
            f"{least.config.get('seq_len', '?')} tokens), and no other method fits either. Do not fine-tune "
            f"on this hardware; {meanwhile}.")
    if bigger:
        on = hardware_label(bigger.config["num_gpus"], bigger.config.get("num_nodes", 1), bigger.config["gpu"])
        text += f" The smallest hardware that fits: {bigger.method} on {on}."
    if smaller:
        text += f" A smaller model that fits this hardware: {smaller.config['model']} with {smaller.method}."
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
        fused_cross_entropy=request.fused_cross_entropy if request else None,
    )
    data = DataHandling(
        validation_ratio=settings.get("validation_ratio", 0.2),
        kfold=settings.get("kfold") or None,
        stratify=settings.get("stratify", False),
        seq_len=hyperparameters.seq_len,
    )
    return Training(method=method.name, hyperparameters=hyperparameters,
                    precision=settings.get("precision", "bf16"), data=data)


def alternatives(candidates: dict[str, Candidate], chosen: Optional[str], approach: str,
                 ranked_by: str, facts: Facts) -> list[Alternative]:
    rows = []
    for name, candidate in candidates.items():
        if name == chosen:
            continue
        estimate = candidate.estimate
        if candidate.excluded_by:
            reason = rulebook.rule(candidate.excluded_by).explain(facts).split(":")[0]
            why = f"excluded: {reason} ({candidate.excluded_by})"
        elif candidate.unavailable:
            why = f"unavailable: {candidate.unavailable}"
        elif candidate.fit is None:
            least = candidate.smallest or estimate
            why = (f"does not fit: needs {least.memory.peak_gib + least.memory.overhead_gib:.1f} GiB "
                   f"of {estimate.device_memory_gib:.1f} GiB even at its smallest (micro-batch "
                   f"{least.config.get('batch_size')}, sequences of {least.config.get('seq_len')} tokens, "
                   f"every memory compromise)")
        elif approach in ("prompting", "rag"):
            why = f"the rules recommend {approach} for this profile"
        else:
            why = f"fits, but {chosen} ranks first ({ranked_by})"
        config = candidate.fit.request.model_dump(include=ALTERNATIVE_CONFIG) if candidate.fit else {}
        peak_gib = round(estimate.memory.peak_gib, 2) if estimate else None
        rows.append(Alternative(approach=candidate.method.approach, method=name, fits=candidate.fit is not None,
                                peak_gib=peak_gib, why_not=why, config=config))
    return rows


def summarise_without_training(approach: str, trace: Trace, complements: list[str]) -> str:
    reason = trace.rationale[0].message if trace.rationale else ""
    what = {"prompting": "Do not fine-tune: prompt the base model.",
            "rag": "Do not fine-tune for this: use retrieval-augmented generation (RAG)."}[approach]
    extra = [c for c in complements if c != approach]
    also = f" Complement it with {', '.join(extra)}." if extra else ""
    return f"{what} {reason}{also}"


def feasible_split(training: Training, facts: Facts) -> tuple[Training, list[str]]:
    """The split made one that `execute` can make with the data given, and what changed, naming the plan.json key.

    A stratified hold-out needs every label on both sides: at least two rows of each, and a share of at
    least labels/rows on each side (advisor/data/split.py refuses anything less).
    """
    data = training.data
    if not (data.stratify and facts.data_labels and facts.examples and not data.kfold):
        return training, []
    labels, rows = facts.data_labels, facts.examples
    needed = labels / rows
    if (facts.data_min_label_count or 0) < 2 or needed > 0.5:
        change = {"stratify": False}
        note = (f"{labels} labels in {rows} rows (the rarest has {facts.data_min_label_count}): no stratified split "
                f"can put every label on both sides, so the plan splits without stratification "
                f"(training.data.stratify = false in plan.json); label more rows of the rare labels.")
    elif data.validation_ratio < needed:
        share = min(0.5, math.ceil(needed * 20) / 20)
        change = {"validation_ratio": share}
        note = (f"{labels} labels in {rows} rows: a stratified {data.validation_ratio:.0%} hold-out cannot hold every "
                f"label, so the plan holds out {share:.0%} (training.data.validation_ratio = {share:g} in plan.json; "
                f"anything between {needed:.3g} and {1 - needed:.3g} works).")
    else:
        return training, []
    return training.model_copy(update={"data": data.model_copy(update=change)}), [note]


def corpus_profile(profile: Profile) -> Profile:
    """The profile of continued pre-training on profile.corpus_tokens: domain adaptation over its sequences."""
    seq_len = profile.seq_len or tasks()["domain-adaptation"].seq_len
    return profile.model_copy(update={"task": "domain-adaptation", "examples": max(1, profile.corpus_tokens // seq_len),
                                      "seq_len": seq_len, "corpus_tokens": None, "quality": "medium", "data": None})


def two_stages(chosen: Candidate, training: Training, profile: Profile, model: ModelEntry,
               facts: Facts) -> list[PlanStage]:
    """Continued pre-training on the corpus with the chosen method, then the task tuning already planned."""
    stage_profile = corpus_profile(profile)
    sequences = stage_profile.examples
    stage_facts = derive_facts(stage_profile, model)
    pretraining = configure(chosen.method, stage_profile, model, stage_facts, None, None)
    stage_facts = stage_facts.model_copy(update=method_facts(chosen.method, fit_change_kinds(pretraining)))
    first = PlanStage(
        name="continued-pretraining",
        purpose=f"next-token training on the {facts.corpus_tokens:,}-token domain corpus "
                f"({sequences:,} sequences of {stage_profile.seq_len}) at a lower learning rate",
        method=chosen.method.name if pretraining.fit else None, examples=sequences,
        estimate=pretraining.estimate,
        training=build_training(pretraining, stage_facts, None) if pretraining.fit else None,
    )
    second = PlanStage(name="task-tuning", purpose=f"{profile.task} tuning on the {profile.examples:,} examples, "
                       "starting from the stage-1 model", method=training.method, examples=profile.examples,
                       estimate=chosen.estimate, training=training)
    return [first, second]


def summarise(method: Method, chosen: Candidate, facts: Facts, complements: list[str]) -> str:
    memory = chosen.estimate.memory
    description = method.description.rstrip(".")
    first_word = description.split()[0]
    if first_word[1:].islower():  # "Full fine-tuning: ..." reads "with full fine-tuning: ..."; "LoRA" stays
        description = description[0].lower() + description[1:]
    scope = f" {chosen.request.footprint.scope}" if chosen.request and chosen.request.footprint.scope else ""
    text = (f"Fine-tune {facts.model} with {description}.{scope} Peak memory {memory.peak_gib:.1f} GiB per device "
            f"of {chosen.estimate.device_memory_gib:.1f} GiB on {hardware_label(facts.num_gpus, facts.num_nodes, facts.gpu)}.")
    if complements:
        text += f" Complement it with {', '.join(complements)}."
    return text
