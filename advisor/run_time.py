"""How long the planned run takes, against what would make it practical.

The planner adds these facts for the risk rules of knowledge/rules/65-time.toml, once it has chosen a method
that fits:

- the whole run's time (`advisor execute`'s: every fold and the final model under k-fold), and whether it is
  longer than the seeds' longest training stage of its kind: TASK_LIMIT_HOURS for task tuning,
  CORPUS_LIMIT_HOURS for continued pre-training. Then the faster options the plan can compute, each taking less
  than that at the whole sequence length: the first other method (in the plan's order) on this hardware, and
  the chosen method on the least catalog hardware and with the largest smaller catalog model (whose context
  holds the plan's sequences);
- on several nodes, whether one node of the same GPUs fits and is faster: with few sequences per device a
  step, the gradient exchange over the network between the nodes can cost more than the second node's
  compute gives.
"""

from __future__ import annotations

from typing import Any

from .candidates import Candidate, catalog_hardware, configure, least_compromised, smaller_models
from .estimate.estimator import tokens_per_second
from .estimate.search import FAST_INTER_NODE_BYTES_PER_S
from .estimate.sharding import hardware_label
from .facts import Facts, derive_facts
from .knowledge_base import ModelEntry
from .models import Profile

#: 000 § Section 8 (ARR-COC-0-1): its longest training stage, 1M examples, takes 2-3 days on 8x A100, the others
#: 1-2 days and 1 day; § Section 6 (Domain Adaptation): task tuning 1 day. A task tuning longer than 3 days is
#: longer than any the seeds plan.
TASK_LIMIT_HOURS = 72.0
#: 000 § Section 6 (Domain Adaptation): the domain pre-training stage takes 1 week.
CORPUS_LIMIT_HOURS = 168.0
#: The facts a corpus stage's plan holds beyond its profile's, for planning it on other hardware or models.
CORPUS_FACTS = ("corpus_only", "corpus_stage", "corpus_tokens")


def time_facts(chosen: Candidate, ranked: list[Candidate], profile: Profile, model: ModelEntry, facts: Facts,
               data_report: Any) -> dict[str, Any]:
    """The run's time, whether it is too long with the faster options, and on several nodes whether one node is
    faster (see the module docstring); nothing without a configuration that fits or a time estimate."""
    time = chosen.estimate.time if chosen.fit is not None and chosen.estimate else None
    if time is None or not time.hours:
        return {}
    limit = CORPUS_LIMIT_HOURS if facts.corpus_stage else TASK_LIMIT_HOURS
    on = hardware_label(profile.num_gpus, profile.num_nodes, profile.gpu)
    found: dict[str, Any] = {"run_hours": time.hours, "run_limit_hours": limit,
                             "run_time": f"{time.hours_text(digits=0)} ({time.hours / 24:,.1f} days) on {on}"}
    update = {name: getattr(facts, name) for name in CORPUS_FACTS} if facts.corpus_stage else {}
    if time.hours > limit:
        found |= {"run_too_long": True,
                  "faster_options": faster_options(chosen, ranked, profile, model, data_report, limit, update)}
    if profile.num_nodes > 1:
        found |= one_node_facts(chosen, profile, model, data_report, update)
    return found


def faster_options(chosen: Candidate, ranked: list[Candidate], profile: Profile, model: ModelEntry,
                   data_report: Any, limit: float, update: dict[str, Any]) -> str:
    """'Faster: ...; ...' with each option the plan finds that takes at most `limit` hours, or that there is none."""
    def quick(trial: Candidate) -> bool:
        return bool(trial.estimate.time and trial.estimate.time.hours <= limit)

    options = []
    other = next((candidate for candidate in ranked if candidate is not chosen and candidate.fit is not None
                  and not candidate.excluded_by and candidate.fit.request.seq_len >= candidate.request.seq_len
                  and quick(candidate)), None)
    if other is not None:
        options.append(f"{other.method.name} on this hardware, {other.estimate.time.hours_text(digits=1)}")
    hardware = least_compromised([chosen], catalog_hardware(profile, model), data_report, offload_last=True,
                                 accept=quick, facts_update=update)
    if hardware is not None:
        trial = hardware[0]
        got = trial.fit.request
        options.append(f"{trial.method.name} on {hardware_label(got.num_gpus, got.num_nodes, got.gpu.id)} "
                       f"({got.gpu.name}), {trial.estimate.time.hours_text(digits=1)}")
    smaller = least_compromised([chosen], smaller_models(profile, model), data_report, offload_last=False,
                                accept=lambda trial: quick(trial) and trial.request.seq_len >= chosen.request.seq_len,
                                facts_update=update)
    if smaller is not None:
        trial, entry = smaller
        options.append(f"the smaller {entry.id} ({entry.architecture.total_params() / 1e9:.1f}B parameters) with "
                       f"{trial.method.name} on this hardware, {trial.estimate.time.hours_text(digits=1)}")
    if not options:
        return (f"No other method, catalog hardware (up to 8 GPUs on one node) or smaller catalog model the plan "
                f"tried takes under {limit:g} h.")
    return f"Faster, under {limit:g} h: " + "; ".join(options) + "."


def one_node_facts(chosen: Candidate, profile: Profile, model: ModelEntry, data_report: Any,
                   update: dict[str, Any]) -> dict[str, Any]:
    """Where one node of the same GPUs fits the chosen method at the same length and is faster: both speeds and
    times, and the chosen layout's speed on a faster network between the nodes."""
    one = profile.model_copy(update={"num_nodes": 1})
    labels = len(data_report.stats.labels) if data_report is not None and data_report.stats.labels else None
    facts = derive_facts(one, model, data_labels=labels)._replace(**update)
    trial = configure(chosen.method, one, model, facts, data_report, None)
    several, single = chosen.estimate.time, trial.estimate.time if trial.fit is not None else None
    if single is None or trial.fit.request.seq_len < chosen.fit.request.seq_len or single.hours >= several.hours:
        return {}
    fast = tokens_per_second(chosen.fit.request, FAST_INTER_NODE_BYTES_PER_S)
    return {
        "one_node_faster": True,
        "node_speeds": (f"~{several.tokens_per_s:,.0f} tokens/s, {several.hours_text()}, on "
                        f"{hardware_label(profile.num_gpus, profile.num_nodes, profile.gpu)} against "
                        f"~{single.tokens_per_s:,.0f} tokens/s, {single.hours_text()}, on one node of "
                        f"{hardware_label(profile.num_gpus, 1, profile.gpu)}"),
        "fast_network_speed": (f"at {FAST_INTER_NODE_BYTES_PER_S * 8 / 1e9:g} Gb/s (InfiniBand) the "
                               f"{profile.num_nodes} nodes would run at ~{fast:,.0f} tokens/s" if fast else ""),
    }
