"""The planner: Profile -> Plan, by running the rules stage by stage and asking the estimator.

Stages: approach (prompting / RAG / fine-tune), method (exclude by metadata,
select preferred traits; a method unavailable for this model, task or GPU is
never a candidate, and --method refuses it with the reason; under --method the
rules still rank the others, so the plan says what it would pick without it and
which methods fit where the forced one does not), training settings per
candidate method, the fit search for each (estimator), then data, memory and risk rules for the chosen
one. Every rule that fires for the chosen plan is in `rationale`, in order,
except a settings rule whose every setting a later rule overrode. Among the
methods that fit, one that keeps the whole sequence length (QLoRA for LoRA)
comes before one that only fits by cutting sequences. With a large unlabelled
corpus the plan has two `stages`: continued pre-training, planned like a plan
of its own (method, settings, rules), then the task tuning it recommends.
The CLI, the TUI and the demo call `plan_for`; candidates.py configures and
fit-searches each method.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

from . import rules as rulebook
from .candidates import (
    ALTERNATIVE_CONFIG, OTHER_HARDWARE, Candidate, batch_size_facts, configure, fit_change_kinds, fit_facts,
    method_hyperparameters, shape_summary, smaller_fitting_model, smallest_fitting_hardware,
)
from .errors import UserError
from .estimate.sharding import hardware_label
from .facts import Facts, corpus_only_plan, derive_facts, examples_note, method_facts, quality_weighted
from .knowledge_base import ModelEntry, method_preference, resolve_model, tasks
from .manager import get_method, usable_methods
from .methods import Method
from .model_tasks import execute_warnings, refuse_untrainable_task
from .models import (
    Alternative, DataHandling, ParamGroup, Plan, PlanStage, Profile, Rationale, Recommendation, Training,
    TrainingHyperparameters, validate_profile,
)
from .quantities import megabytes
from .rules import Rule
from .run_time import time_facts

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


#: Settings the final value of another makes moot: under k-fold, execute holds out each fold's own share
#: and trains the final model on all the data, so no validation ratio applies; a global batch in tokens
#: replaces the one in sequences.
MOOT_UNDER = {"kfold": {"validation_ratio"}, "effective_batch_tokens": {"effective_batch"}}


def in_effect(rules: list[Rule]) -> list[Rule]:
    """`rules` without those whose every setting a later rule in the list overrode, or the final value of
    another setting made moot (MOOT_UNDER)."""
    settings = [rule.set.model_dump(exclude_none=True) if rule.set else {} for rule in rules]
    final = {key: value for rule_settings in settings for key, value in rule_settings.items()}
    moot = {key for setting, keys in MOOT_UNDER.items() if final.get(setting) for key in keys}
    kept = []
    for index, rule in enumerate(rules):
        keys = set(settings[index])
        later = {key for other in settings[index + 1:] for key in other}
        if not keys or not keys <= later | moot:
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

    With a large unlabelled corpus and no labelled examples, or too few to tune the task on, the plan is
    continued pre-training on the corpus (facts.corpus_only).
    """
    stated = profile
    model = resolve_model(profile.model)
    refuse_untrainable_task(profile, model)
    corpus_only = corpus_only_plan(profile)
    if corpus_only:
        profile = corpus_profile(profile)
    facts = derive_facts(profile, model, **label_facts(data_report))._replace(
        corpus_only=corpus_only, **(corpus_facts(stated) if corpus_only else {}))
    trace = Trace()
    if data_report is not None:
        trace.warnings.extend(data_report.warnings)
    assumptions = assumed(facts) + token_counting(data_report, profile.model)
    trace.warnings.extend(assumptions)  # also a warning: a plan for other hardware may not fit yours
    trace.warnings.extend(execute_warnings(profile.task))

    approach, complements = decide_approach(facts, trace)
    fine_tuning = approach == "fine_tune" or profile.method is not None
    methods = methods_for_objective(profile, model)
    # Method rules explain a fine-tune; a prompting/RAG plan ranks methods only for its alternatives.
    ranking = rank_methods(methods, facts, trace if fine_tuning else Trace(), profile.method)
    candidates = {name: configure(methods[name], profile, model, facts, data_report, ranking.excluded.get(name))
                  for name in methods}
    if profile.method and candidates[profile.method].unavailable:
        raise UserError(f"--method {profile.method} cannot be planned for {profile.model} "
                        f"(task {profile.task}, gpu {profile.gpu}): {candidates[profile.method].unavailable}")
    ranking = ranking.available(candidates)
    order, ranked_by = ranking.order, ranking.ranked_by
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

    chosen, changes = choose(ranking.choices, candidates)
    unforced = forced_facts(ranking, candidates, chosen, approach)
    if chosen.fit is None and unforced.get("fitting_methods"):
        changes = ["forced_misfit"]  # --method does not fit, but other methods do: nothing_fits would deny them
    method = chosen.method
    facts = facts._replace(**method_facts(method, fit_change_kinds(chosen) + changes)
                           | sequence_facts(chosen, profile, data_report)
                           | long_prompt_facts(chosen, profile, data_report)
                           | fit_facts(chosen, profile.batch_size)
                           | batch_size_facts(chosen, profile.batch_size)
                           | length_keepers(chosen, [candidates[name] for name in order], ranked_by)
                           | storage_facts(chosen) | unforced
                           | stopping_facts(chosen.settings))
    facts = facts._replace(**time_facts(chosen, [candidates[name] for name in order], profile, model, facts,
                                        data_report))
    explain_choice(facts, trace)
    rows = alternatives(candidates, chosen=method.name, approach=method.approach, ranked_by=ranked_by, facts=facts,
                        order=order)
    if chosen.fit is None:
        # Contract: a method that does not fit is never the recommendation. Say so, keep its
        # estimate for the numbers, and show the smallest hardware, and a smaller model, that fit
        # (under --method, for that method).
        ranked = [candidates[name] for name in ranking.choices]
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
    stages = [corpus_stage(profile, model), task_stage(chosen, training, profile)] if facts.two_stage else []
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
        warnings=trace.warnings + split_notes + prompts_refused(facts, seq_len_given=bool(profile.seq_len)),
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


#: A seq_len at the data's 95th-percentile length cuts at most about 5% of the records: more prompts than that
#: filling it are no tail of outliers to leave out but a length wrong for the data.
LONG_PROMPTS_MAX_SHARE = 0.05


def long_prompt_facts(chosen: Candidate, profile: Profile, data_report: Any) -> dict[str, Any]:
    """The data's prompts against the plan's seq_len, and its training.data.long_prompts where some prompt fills
    it: "drop" (leave those records out) where the length came from the data and they are its tail, else "refuse"."""
    lengths = getattr(data_report.stats, "token_lengths", None) if data_report is not None else None
    if lengths is None or lengths.prompt_max is None or chosen.fit is None:
        return {}
    seq_len, records = chosen.fit.request.seq_len, data_report.valid_records
    filling = lengths.prompts_filling(seq_len)
    facts: dict[str, Any] = {
        "data_records": records, "prompt_max": lengths.prompt_max, "prompts_filling": filling,
        "token_count": "counted with the model's tokenizer" if lengths.method == "tokenizer" else "estimated",
    }
    if lengths.prompt_max < seq_len:
        return facts
    if filling is None:  # not counted: nothing says they are only a tail
        return facts | {"long_prompts": "refuse"}
    share = filling / records
    tail = not profile.seq_len and share <= LONG_PROMPTS_MAX_SHARE
    return facts | {"prompts_filling_share": share, "records_kept": records - filling,
                    "long_prompts": "drop" if tail else "refuse"}


def prompts_refused(facts: Facts, seq_len_given: bool) -> list[str]:
    """A warning where the data's longest prompt fills the plan's seq_len and the plan keeps the preflight's
    refusal (the data.long-prompts-left-out rule says it where the plan leaves such records out)."""
    if facts.long_prompts != "refuse":
        return []
    seq_len = facts.seq_len_fit
    refused = (f"your data's longest prompt takes {facts.prompt_max} tokens ({facts.token_count}, before the "
               f"template) and fills the plan's seq_len {seq_len}: truncation leaves such a record no response to "
               f"learn from and `advisor execute` refuses it; pass --seq-len above {facts.prompt_max} plus the "
               f"template, or shorten those prompts (`advisor validate DATA --seq-len {seq_len}` counts them)")
    if seq_len_given or facts.prompts_filling_share is None:
        return [refused]
    return [f"{facts.prompts_filling} of your {facts.data_records} records ({facts.prompts_filling_share:.0%}) have a "
            f"prompt that fills the plan's seq_len {seq_len}, more than the {LONG_PROMPTS_MAX_SHARE:.0%} a length "
            f"from the data's 95th percentile leaves out, so the plan does not leave them out (training.data."
            f"long_prompts stays \"refuse\"): {refused}"]


def sequence_facts(chosen: Candidate, profile: Profile, data_report: Any) -> dict[str, Any]:
    """The sequence length asked, where it came from, and the one that fits (memory.shorter-sequences)."""
    capped = chosen.request is not None and (profile.seq_len or 0) > chosen.request.seq_len
    origin = ("the model's whole context" if capped  # data.seq-len-above-context says why
              else "the --seq-len you asked" if profile.seq_len
              else "your data's 95th-percentile length" if data_report is not None
              and getattr(data_report.stats, "token_lengths", None)
              else f"the {profile.task} default length")
    fitted = chosen.fit.request.seq_len if chosen.fit else None
    return {"seq_len_asked": chosen.request.seq_len, "seq_len_fit": fitted, "seq_len_origin": origin}


def stopping_facts(settings: dict[str, Any]) -> dict[str, Any]:
    """Where early stopping applies, as `advisor execute` runs the settings (backends/local.py): on the validation
    split; or under k-fold in each fold's model only, on its held-out fold, while the final model trains on all
    the data for every planned epoch, with nothing held out to stop on."""
    folds, epochs = settings.get("kfold") or 0, settings.get("epochs", 3)
    facts = {"kfold": folds, "epochs": epochs}
    if folds:
        facts["early_stopping"] = (
            f"Under {folds}-fold cross-validation each fold's model stops early on its held-out fold; the final "
            f"model then trains on all the data for all {epochs:g} epochs, with no validation split to stop on.")
    return facts


def explain_choice(facts: Facts, trace: Trace) -> None:
    """Record the training, data, memory and risk rules that hold for the chosen method (`facts` has its facts)."""
    for stage in ("training", "data", "memory", "risk"):
        matched = rulebook.matching(stage, facts)
        for rule in in_effect(matched) if stage in ("training", "data") else matched:
            trace.record(rule, facts)


# -- stage: approach ----------------------------------------------------------------
def decide_approach(facts: Facts, trace: Trace) -> tuple[str, list[str]]:
    """The first approach rule that sets an approach decides; complements accumulate (the approach itself is no
    complement of itself: RAG over a small corpus is the plan's approach where the rules already chose RAG).

    Each rule sees the approach decided before it (the fact decided_approach), so a note that holds only
    for a fine-tune (a pre-training stage) can say so.
    """
    approach: Optional[str] = None
    complements: list[str] = []
    for rule in rulebook.stage_rules("approach"):
        if (rule.approach and approach is not None) or not rule.applies(facts):
            continue
        approach = approach or rule.approach
        facts = facts._replace(decided_approach=approach)
        complements += [c for c in rule.complements if c not in complements]
        trace.record(rule, facts)
    approach = approach or "fine_tune"
    return approach, [complement for complement in complements if complement != approach]


# -- stage: method ------------------------------------------------------------------
class Ranking(NamedTuple):
    """The method stage's answer. Under --method the forced method comes first and is the only one chosen from
    (`choices`); `unforced` is the rules' own order, for what the plan would pick without --method."""

    order: list[str]
    excluded: dict[str, str]
    ranked_by: str
    unforced: list[str]
    forced: bool = False

    @property
    def choices(self) -> list[str]:
        return self.order[:1] if self.forced else self.order

    def available(self, candidates: dict[str, Candidate]) -> Ranking:
        """Without the methods that cannot serve this profile at all."""
        usable = [name for name in self.order if not candidates[name].unavailable]
        return self._replace(order=usable, unforced=[name for name in self.unforced if name in usable])


def rank_methods(methods: dict[str, Method], facts: Facts, trace: Trace, forced: Optional[str] = None) -> Ranking:
    """Candidate names in order of preference, which rule excluded each other method, and what put the first
    candidate first (a rule id, or --method). The rules rank the methods under --method too (their rationale
    untraced, as they decided nothing): the other methods follow the forced one in their order, without those
    the rules exclude, for the alternatives and for what the plan would pick without --method."""
    if not forced:
        return rules_ranking(methods, facts, trace)
    get_method(forced)  # one clear line for an unknown name
    rules = rules_ranking(methods, facts, Trace())
    others = [name for name in rules.order if name != forced]
    excluded = {name: rule for name, rule in rules.excluded.items() if name != forced}
    return Ranking([forced] + others, excluded, "--method", rules.order, forced=True)


def rules_ranking(methods: dict[str, Method], facts: Facts, trace: Trace) -> Ranking:
    """The method rules' order of the methods they do not exclude (see rank_methods)."""
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
    return Ranking(selected + rest, excluded, ranked_by, selected + rest)


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


#: How many of the methods that fit where a forced one does not the plan names before "and N more".
FITTING_NAMED = 3


def forced_facts(ranking: Ranking, candidates: dict[str, Candidate], chosen: Candidate,
                 approach: str) -> dict[str, Any]:
    """Under --method: what the plan would do without it (unforced_advice), and the other methods the rules
    allow that fit, with their peak memory (fitting_methods: where the forced one does not, the plan names them)."""
    if not ranking.forced:
        return {}
    if approach in ("prompting", "rag"):
        advice = f"Drop --method and the plan recommends {approach}."
    else:
        pick, changes = choose(ranking.unforced, candidates) if ranking.unforced else (None, ["nothing_fits"])
        if "nothing_fits" in changes:
            advice = "No other method the rules allow here fits."
        elif pick is chosen:
            advice = ""
        else:
            advice = f"Drop --method and the plan picks {pick.method.name} ({peak(pick)} peak per device)."
    others = [candidates[name] for name in ranking.unforced
              if candidates[name] is not chosen and candidates[name].fit is not None]
    named = ", ".join(f"{other.method.name} ({peak(other)} peak)" for other in others[:FITTING_NAMED])
    more = f" and {len(others) - FITTING_NAMED} more (see the alternatives)" if len(others) > FITTING_NAMED else ""
    return {"unforced_advice": advice, "fitting_methods": named + more}


def peak(candidate: Candidate) -> str:
    return f"{candidate.estimate.memory.peak_gib:.1f} GiB"


def storage_facts(chosen: Candidate) -> dict[str, str]:
    """What the chosen method stores per task and in all, as a person reads sizes (risk.forced-full-copies)."""
    storage = chosen.estimate.storage if chosen.estimate else None
    if storage is None:
        return {}
    return {"storage_per_task": megabytes(storage.per_task_mb), "storage_total": megabytes(storage.total_mb)}


#: choose()'s trade, as the plan says it.
KEEPING_LENGTH = "a method of the preferred family (or LoRA's) that keeps more of the length comes before cutting"


def cuts_sequences(candidate: Candidate) -> bool:
    return candidate.fit is not None and candidate.fit.request.seq_len < candidate.request.seq_len


def ranking_reason(first: Method, other: Method, ranked_by: str) -> str:
    """What puts `first` before `other`: the method rule that selected it and not the other, else the preference."""
    if ranked_by.startswith("method."):
        select = rulebook.rule(ranked_by).select
        if select is not None and select.matches(first) and not select.matches(other):
            return ranked_by
        return "knowledge/methods.toml preference"
    return ranked_by


def length_keepers(chosen: Candidate, ranked: list[Candidate], ranked_by: str) -> dict[str, str]:
    """For the memory rules: where the preferred method falls short, and where the chosen one cuts sequences,
    which methods keep the whole length and why the chosen one still comes first (choose() trades length only
    for a method of the preferred family or LoRA's)."""
    facts: dict[str, str] = {}
    preferred = ranked[0]
    if preferred is not chosen:
        name, memory = preferred.method.name, f"{preferred.estimate.device_memory_gib or 0:.0f} GiB"
        if preferred.fit is None:
            facts["preferred_fit"] = (f"The preferred method, {name}, does not fit {memory}; {chosen.method.name} is "
                                      "the next preferred method that does")
        else:
            facts["preferred_fit"] = (
                f"The preferred method, {name}, fits {memory} only with sequences cut to "
                f"{preferred.fit.request.seq_len} tokens (of {preferred.request.seq_len}); {chosen.method.name} keeps "
                f"{kept_length(chosen)}, and {KEEPING_LENGTH}")
    if not cuts_sequences(chosen):
        return facts
    keepers = [other for other in ranked if other.fit is not None and not cuts_sequences(other)]
    if not keepers:
        return facts | {"seq_len_keepers": "No other method keeps that length."}
    names = ", ".join(other.method.name for other in keepers)
    if ranked_by == "--method":
        return facts | {"seq_len_keepers": (
            f"{'Another method keeps' if len(keepers) == 1 else 'Other methods keep'} all {chosen.request.seq_len} "
            f"tokens ({names}): pass --method {keepers[0].method.name} instead to keep the length.")}
    return facts | {"seq_len_keepers": (
        f"{'Another method keeps' if len(keepers) == 1 else 'Other methods keep'} all {chosen.request.seq_len} "
        f"tokens ({names}), but {'it is not' if len(keepers) == 1 else 'none is'} of the family that ranks first "
        f"({ranking_reason(chosen.method, keepers[0].method, ranked_by)}): pass --method {keepers[0].method.name} "
        "to keep the length with it.")}


def passed_over(candidate: Candidate, chosen: Candidate, ranks_before: bool, ranked_by: str) -> str:
    """Why a method that fits is not the recommendation, with the sequence cut it fits with, if any."""
    asked, length = candidate.request.seq_len, candidate.fit.request.seq_len
    if not ranks_before:
        fits = f"fits with sequences cut to {length} tokens (of {asked})" if length < asked else "fits"
        if ranked_by == "--method":
            return (f"{fits}, but you passed --method {chosen.method.name}" if chosen.fit is not None
                    else f"{fits}, where --method {chosen.method.name} does not")
        reason = ranking_reason(chosen.method, candidate.method, ranked_by)
        return f"{fits}, but {chosen.method.name} ranks first ({reason})"
    # choose() passed this one over for the chosen one, which keeps more of the length
    if length < asked:
        return (f"fits only with sequences cut to {length} tokens (of {asked}); {chosen.method.name} keeps "
                f"{kept_length(chosen)}, and {KEEPING_LENGTH}")
    return (f"fits at all {asked} tokens, but the first method that fits cuts sequences, and {chosen.method.name} "
            f"keeps {kept_length(chosen)}: {KEEPING_LENGTH}")


def kept_length(chosen: Candidate) -> str:
    kept = chosen.fit.request.seq_len
    return f"all {kept}" if kept == chosen.request.seq_len else str(kept)


def summarise_nothing_fits(method: Method, chosen: Candidate, facts: Facts, bigger: Optional[Alternative],
                           smaller: Optional[Alternative]) -> str:
    """Why the plan recommends no method: the (forced, or preferred) method's least memory against the device's,
    and under --method the methods that fit instead; then the hardware and the model that would fit it."""
    least = chosen.smallest or chosen.estimate
    hardware = hardware_label(facts.num_gpus, facts.num_nodes, facts.gpu)
    where = f"{facts.device_memory_gib:.1f} GiB per device on {hardware}"
    needs = (f"{method.name} on {facts.model} needs {least.memory.peak_gib + least.memory.overhead_gib:.1f} GiB per "
             f"device even at its smallest ({shape_summary(least.config)})")
    if facts.fitting_methods:
        text = (f"--method {method.name} does not fit {where}: {needs}. Other methods fit here: "
                f"{facts.fitting_methods}. {facts.unforced_advice}".rstrip())
    else:
        meanwhile = ("use RAG for the knowledge and prompt the base model for the rest meanwhile"
                     if facts.knowledge_goal else "prompt the base model meanwhile")
        text = (f"Nothing fits {where}: {needs}, and no other method fits either. Do not fine-tune on this hardware; "
                f"{meanwhile}.")
    if bigger:
        text += f" The smallest hardware that fits: {bigger.method} on {bigger.why_not.removeprefix(OTHER_HARDWARE)}."
    if smaller:
        text += f" A smaller model that fits this hardware: {smaller.config['model']} with {smaller.method}."
    return text


# -- the plan's parts ----------------------------------------------------------------
def build_training(chosen: Candidate, facts: Facts, data_report: Any) -> Training:
    settings, provenance = chosen.settings, chosen.provenance
    method = chosen.method
    request = chosen.fit.request if chosen.fit else None
    # Full fine-tuning and layer freezing train weights the checkpoint came with (at learning_rate) and a new head
    # at its own rate; every other method trains only what it adds (adapters, soft prompts, a head): one "new" group.
    trains_pretrained = method.family in ("full", "partial")
    groups = [ParamGroup(name="pretrained" if trains_pretrained else "new",
                         learning_rate=settings["learning_rate"], rule=provenance["learning_rate"])]
    if "new_layer_learning_rate" in settings and trains_pretrained:
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
        long_prompts=facts.long_prompts or "refuse",
    )
    return Training(method=method.name, hyperparameters=hyperparameters,
                    precision=settings.get("precision", "bf16"), data=data)


def alternatives(candidates: dict[str, Candidate], chosen: Optional[str], approach: str,
                 ranked_by: str, facts: Facts, order: Optional[list[str]] = None) -> list[Alternative]:
    rows = []
    order = order or []
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
                   f"of {estimate.device_memory_gib:.1f} GiB even at its smallest ({shape_summary(least.config)})")
        elif approach in ("prompting", "rag"):
            why = f"the rules recommend {approach} for this profile"
        else:
            ranks_before = name in order and chosen in order and order.index(name) < order.index(chosen)
            why = passed_over(candidate, candidates[chosen], ranks_before, ranked_by)
        config = candidate.fit.request.model_dump(include=ALTERNATIVE_CONFIG) if candidate.fit else {}
        peak_gib = round(estimate.memory.peak_gib, 2) if estimate else None
        rows.append(Alternative(approach=candidate.method.approach, method=name, fits=candidate.fit is not None,
                                peak_gib=peak_gib, why_not=why, config=config))
    return rows


def summarise_without_training(approach: str, trace: Trace, complements: list[str]) -> str:
    reason = trace.rationale[0].message if trace.rationale else ""
    what = {"prompting": "Do not fine-tune: prompt the base model.",
            "rag": "Do not fine-tune for this: use retrieval-augmented generation (RAG)."}[approach]
    also = f" Complement it with {', '.join(complements)}." if complements else ""
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


def corpus_facts(profile: Profile) -> dict[str, Any]:
    """What training on profile's corpus adds to the facts of its corpus_profile: the corpus and its size in tokens
    (its examples are sequences cut from it), and the labelled examples given beside it."""
    labelled = examples_note(profile.examples, profile.quality, quality_weighted(profile.examples, profile.quality))
    return {"corpus_stage": True, "corpus_tokens": profile.corpus_tokens, "labelled_examples": profile.examples,
            "labelled_note": labelled, "labelled_task": profile.task,
            "labelled_min_examples": tasks()[profile.task].min_examples}


def corpus_stage(profile: Profile, model: ModelEntry) -> PlanStage:
    """Stage 1 of a two-stage plan, planned like a plan of its own: continued pre-training on the corpus, with
    the method the rules rank first among those that fit, its settings, and the rules behind each."""
    stage_profile = corpus_profile(profile)
    facts = derive_facts(stage_profile, model)._replace(**corpus_facts(profile))
    trace = Trace()
    methods = methods_for_objective(stage_profile, model)
    ranking = rank_methods(methods, facts, trace, profile.method)
    ranked_by = ranking.ranked_by
    candidates: dict[str, Candidate] = {}
    for name in ranking.choices:  # up to the first that fits at the full length: choose() would take no later one
        candidates[name] = configure(methods[name], stage_profile, model, facts, None, ranking.excluded.get(name))
        if candidates[name].fit is not None and not cuts_sequences(candidates[name]):
            break
    order = [name for name in candidates if not candidates[name].unavailable]
    purpose = f"next-token training on the {profile.corpus_tokens:,}-token domain corpus"
    if not order:
        return PlanStage(name="continued-pretraining", purpose=purpose, examples=stage_profile.examples,
                         rationale=trace.rationale)
    chosen, changes = choose(order, candidates)
    facts = facts._replace(**method_facts(chosen.method, fit_change_kinds(chosen) + changes)
                           | sequence_facts(chosen, stage_profile, None)
                           | fit_facts(chosen)
                           | length_keepers(chosen, [candidates[name] for name in order], ranked_by))
    facts = facts._replace(**time_facts(chosen, [candidates[name] for name in order], stage_profile, model,
                                        facts, None))
    explain_choice(facts, trace)
    fits = "nothing_fits" not in changes
    seq_len = (chosen.fit or chosen).request.seq_len  # the model's context, or what fits, may be below the asked
    sequences = max(1, profile.corpus_tokens // seq_len)
    return PlanStage(name="continued-pretraining", purpose=f"{purpose}, cut into {sequences:,} sequences of {seq_len} "
                     "tokens", method=chosen.method.name if fits else None, examples=sequences,
                     estimate=chosen.estimate, training=build_training(chosen, facts, None) if fits else None,
                     rationale=trace.rationale, warnings=trace.warnings)


def task_stage(chosen: Candidate, training: Training, profile: Profile) -> PlanStage:
    """Stage 2 of a two-stage plan: the task tuning the plan recommends; its reasons are the plan's rationale."""
    return PlanStage(name="task-tuning", purpose=f"{profile.task} tuning on the {profile.examples:,} examples, "
                     "starting from the stage-1 model", method=training.method, examples=profile.examples,
                     estimate=chosen.estimate, training=training)


def summarise(method: Method, chosen: Candidate, facts: Facts, complements: list[str]) -> str:
    memory = chosen.estimate.memory
    description = method.description.rstrip(".")
    first_word = description.split()[0]
    if first_word[1:].islower():  # "Full fine-tuning: ..." reads "with full fine-tuning: ..."; "LoRA" stays
        description = description[0].lower() + description[1:]
    scope = f" {chosen.request.footprint.scope}" if chosen.request and chosen.request.footprint.scope else ""
    what = (f"Continue pre-training {facts.model} on the {facts.corpus_tokens:,}-token domain corpus"
            if facts.corpus_only else f"Fine-tune {facts.model}")
    text = (f"{what} with {description}.{scope} Peak memory {memory.peak_gib:.1f} GiB per device "
            f"of {chosen.estimate.device_memory_gib:.1f} GiB on {hardware_label(facts.num_gpus, facts.num_nodes, facts.gpu)}.")
    if facts.corpus_only and facts.labelled_examples:
        text += (f" The {facts.labelled_examples:,} labelled examples are too few to tune the task on: use them as "
                 "few-shot examples in prompts to the adapted model.")
    if complements:
        text += f" Complement it with {', '.join(complements)}."
    if facts.run_too_long:
        text += (f" But training takes {facts.run_time}, longer than the {facts.run_limit_hours:g} h the seeds' "
                 "longest such stage takes: see the warnings for faster options.")
    if facts.one_node_faster:
        text += " One node of the same GPUs trains it faster (see the warnings)."
    return text
