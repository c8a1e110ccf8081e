"""Second expert review, the run's time: k-fold plans time every model execute trains (#2) and say where early
stopping applies; a plan on several nodes that one node trains faster says so with both numbers (#3); a run
longer than the seeds' longest stage is flagged with faster options (#9); the link inside a node is the GPU's
own (NVLink or PCIe), and continued pre-training takes a pre-training batch (#15)."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from advisor.candidates import train_tokens
from advisor.cli.render import render_plan
from advisor.estimate import estimate
from advisor.estimate import throughput
from advisor.facts import derive_facts
from advisor.knowledge_base import gpus, resolve_gpu
from advisor.models import Plan, Profile
from advisor.planner import make_plan
from advisor.run_time import CORPUS_LIMIT_HOURS, TASK_LIMIT_HOURS
from advisor.tui.screens.recommendation import costs
from tests.test_review_search import request

KFOLD = dict(task="preference", examples=800, model="mistral-small-24b", gpu="a100-80gb")
TWO_NODES = dict(examples=200000, quality="high", model="llama-3.1-8b", gpu="h100", num_gpus=8, num_nodes=2)
CPU_WEEKS = dict(task="code", examples=5000, model="qwen3-8b", gpu="cpu", gpu_memory_gib=128)


def rationale(plan: Plan) -> dict[str, str]:
    return {entry.rule: entry.message for entry in plan.rationale}


def text_of(plan: Plan) -> str:
    console = Console(width=2000, record=True)
    render_plan(plan, console)
    return console.export_text()


@pytest.fixture(scope="module")
def kfold() -> Plan:
    return make_plan(Profile(**KFOLD))


@pytest.fixture(scope="module")
def cpu_weeks() -> Plan:
    return make_plan(Profile(**CPU_WEEKS))


# -- #2: a k-fold run is k fold models and the final one ----------------------------------------------------------
def test_kfold_trains_k_times_the_data_where_a_hold_out_trains_four_fifths():
    profile = Profile(examples=800)
    facts = derive_facts(profile)
    held_out = train_tokens(profile, facts, {"validation_ratio": 0.2, "epochs": 3}, 100)
    folds = train_tokens(profile, facts, {"kfold": 5, "validation_ratio": 0.2, "epochs": 3}, 100)
    assert held_out == 800 * 100 * 0.8 * 3
    assert folds == 800 * 100 * 3 * 5  # 5 folds on 4/5 of the data each, then the final model on all of it


def test_a_kfold_plan_times_the_whole_run(kfold):
    hp, time = kfold.training.hyperparameters, kfold.estimate.time
    assert kfold.training.data.kfold == 5 and time.kfold == 5
    assert time.train_tokens == int(800 * hp.seq_len / 2 * hp.epochs * 5)
    assert time.hours == pytest.approx(time.train_tokens / time.tokens_per_s / 3600, rel=1e-3)


def test_the_cli_and_the_tui_say_the_time_covers_every_fold_and_the_final_model(kfold):
    hours = f"~{kfold.estimate.time.hours:.2f} h"
    assert f"Time: 5 folds + final model: {hours} in all" in text_of(kfold)
    assert f"Time: 5 folds + final model: {hours} in all" in costs(kfold)


def test_a_plan_without_kfold_says_nothing_of_folds():
    plan = make_plan(Profile(examples=5000, model="llama-3.1-8b", gpu="h100"))
    assert plan.training.data.kfold is None and plan.estimate.time.kfold is None
    assert "fold" not in costs(plan)


def test_under_kfold_no_message_promises_early_stopping_for_the_final_model(kfold):
    why = rationale(kfold)
    assert "training.early-stopping" not in why and "training.early-stopping-kfold" in why
    assert "all 2 epochs, with no validation split and no early stopping" in why["training.early-stopping-kfold"]
    stopping = [message for message in why.values() if re.search(r"stop(s|ping)? early|early stopping", message, re.I)]
    assert len(stopping) >= 3
    assert all("final model" in message for message in stopping), stopping


def test_without_kfold_early_stopping_is_on_the_validation_split():
    why = rationale(make_plan(Profile(examples=5000, model="llama-3.1-8b", gpu="h100")))
    assert "training.early-stopping" in why and "training.early-stopping-kfold" not in why
    assert "Early stopping on the validation split ends it sooner." in why["training.epochs-llm-sft"]


def test_the_dry_run_says_each_fold_stops_early_and_the_final_model_does_not():
    from advisor.backends.describe import ResolvedRun, SplitCounts

    folds = ResolvedRun.model_construct(split=SplitCounts(strategy="stratified", seed=42, train=800,
                                                          folds=[{"train": 640, "validation": 160}] * 5),
                                        early_stopping_patience=2, eval_metric="accuracy", epochs=3.0)
    assert folds.stopping() == ("each fold stops early on its held-out fold's accuracy (patience 2), its best "
                                "checkpoint kept; the final model trains all 3 epochs, with no early stopping")
    held_out = folds.model_copy(update={"split": SplitCounts(strategy="random", seed=42, train=640, validation=160)})
    assert held_out.stopping().startswith("early stopping on validation accuracy (patience 2)")


# -- #3: several nodes that one node beats ------------------------------------------------------------------------
def test_two_nodes_slower_than_one_say_so_with_both_numbers():
    two = make_plan(Profile(**TWO_NODES))
    one = make_plan(Profile(**{**TWO_NODES, "num_nodes": 1}))
    assert two.estimate.time.tokens_per_s < one.estimate.time.tokens_per_s
    warning = rationale(two)["risk.one-node-faster"]
    assert warning in two.warnings
    for time in (two.estimate.time, one.estimate.time):
        assert f"~{time.tokens_per_s:,.0f} tokens/s, ~{time.hours:.2f} h" in warning
    assert "--num-nodes 1" in warning and "100 Gb/s" in warning and "at 400 Gb/s (InfiniBand)" in warning
    assert "effective batch of 16 sequences (micro-batch 1 x 1 accumulation step x 16 devices)" in warning
    assert "One node of the same GPUs trains it faster" in two.recommendation.summary


def test_two_nodes_that_are_faster_get_no_such_warning():
    lora = dict(TWO_NODES, quality="medium", method="lora")
    two = make_plan(Profile(**lora))
    one = make_plan(Profile(**{**lora, "num_nodes": 1}))
    assert two.estimate.time.hours < one.estimate.time.hours
    assert "risk.one-node-faster" not in rationale(two)


# -- #9: a run of weeks --------------------------------------------------------------------------------------------
def test_a_run_of_weeks_is_flagged_with_a_gpu_that_takes_hours(cpu_weeks):
    time = cpu_weeks.estimate.time
    assert time.hours > 30 * 24
    warning = rationale(cpu_weeks)["risk.run-too-long"]
    assert warning in cpu_weeks.warnings
    assert f"~{time.hours:,.0f} h ({time.hours / 24:,.1f} days) on cpu" in warning
    assert f"Faster, under {TASK_LIMIT_HOURS:g} h:" in warning
    option = re.search(r"lora on (?:(\d+) )?([a-z0-9\-]+) \([^)]*\), ~([\d,.]+) h", warning)
    assert option, warning
    count, gpu, hours = int(option.group(1) or 1), option.group(2), float(option.group(3).replace(",", ""))
    assert hours <= TASK_LIMIT_HOURS
    there = make_plan(Profile(**{**CPU_WEEKS, "gpu": gpu, "num_gpus": count, "gpu_memory_gib": None, "method": "lora"}))
    assert there.estimate.fits and there.estimate.time.hours == pytest.approx(hours, abs=0.05)
    assert "But training takes" in cpu_weeks.recommendation.summary


def test_a_smaller_model_is_offered_only_when_it_keeps_the_sequence_length(cpu_weeks):
    # gpt2 would train in under 3 days on the CPU, but its 1,024-token context cuts the plan's 2,048-token code.
    assert "gpt2" not in rationale(cpu_weeks)["risk.run-too-long"]


def test_a_run_of_hours_is_not_flagged():
    plan = make_plan(Profile(**{**CPU_WEEKS, "gpu": "h100", "gpu_memory_gib": None}))
    assert plan.estimate.time.hours < TASK_LIMIT_HOURS
    assert "risk.run-too-long" not in rationale(plan) and "But training takes" not in plan.recommendation.summary


def test_a_corpus_of_months_is_flagged_against_the_seeds_week():
    plan = make_plan(Profile(examples=0, corpus_tokens=2_000_000_000, model="llama-3.1-8b", gpu="a10g"))
    assert plan.estimate.time.hours > CORPUS_LIMIT_HOURS
    warning = rationale(plan)["risk.corpus-run-too-long"]
    assert "(1 week)" in warning and f"under {CORPUS_LIMIT_HOURS:g} h" in warning
    assert "risk.run-too-long" not in rationale(plan)


# -- #15: the link inside a node, and the pre-training batch -------------------------------------------------------
def test_the_catalog_gives_each_gpu_its_link():
    catalog = gpus()
    for pcie in ("t4", "l4", "a10g", "rtx4090", "l40s"):
        assert "PCIe" in catalog[pcie].interconnect and catalog[pcie].intra_node_gb_per_s <= 32
    for nvlink in ("a100-80gb", "h100", "h200", "b200"):
        assert "NVLink" in catalog[nvlink].interconnect and catalog[nvlink].intra_node_gb_per_s >= 300
    assert all(entry.intra_node_gb_per_s for entry in catalog.values() if entry.cuda)


def test_a_pcie_card_shards_slower_than_the_same_card_on_nvlink():
    l40s = resolve_gpu("l40s")
    shape = dict(batch_size=2, seq_len=1024, gradient_checkpointing=True, num_gpus=8, sharding="fsdp",
                 precision="mixed", train_tokens=10**8)
    pcie = estimate(request("llama-3.1-8b", "full", gpu=l40s, **shape))
    nvlink = estimate(request("llama-3.1-8b", "full", gpu=l40s.model_copy(update={"intra_node_gb_per_s": 450.0}),
                              **shape))
    assert pcie.config["intra_node_gb_per_s_assumed"] == pytest.approx(32 * throughput.LINK_EFFICIENCY)
    assert pcie.time.tokens_per_s < 0.9 * nvlink.time.tokens_per_s


def test_continued_pretraining_takes_about_a_million_tokens_a_step():
    plan = make_plan(Profile(examples=0, corpus_tokens=200_000_000, model="llama-3.1-8b", gpu="h100"))
    hp = plan.training.hyperparameters
    tokens = hp.batch_size * hp.gradient_accumulation_steps * hp.seq_len
    assert abs(tokens - 2**20) <= hp.seq_len
    why = rationale(plan)
    assert "training.corpus-batch" in why and "training.effective-batch" not in why
    assert f"about {tokens:,} tokens per optimizer step" in why["training.corpus-batch"]


def test_task_tuning_keeps_its_batch_of_sixteen():
    plan = make_plan(Profile(examples=5000, model="llama-3.1-8b", gpu="h100"))
    hp = plan.training.hyperparameters
    assert hp.batch_size * hp.gradient_accumulation_steps == 16
    assert "training.corpus-batch" not in rationale(plan)
