"""Two-stage plans (continued pre-training on a corpus, then task tuning), after the expert review (#5, #12).

#5: the corpus stage trains on the whole corpus, packed full, less a small hold-out; the human text gives each
stage's time and the total. #12: the task stage's rate follows the seeds' two-stage recipe; the corpus stage is
planned like a plan of its own (full fine-tuning where it fits, else LoRA at a high rank), every one of its
settings has a rule behind it, and it speaks of corpus tokens, not examples.
"""

from __future__ import annotations

import functools
import io
import re

from rich.console import Console

from advisor.cli.render import render_plan
from advisor.manager import get_method
from advisor.models import Plan, Profile
from advisor.planner import make_plan
from advisor.rules import rule

#: The review's scenario #2: a 2B-token corpus and 20,000 QA examples on 4 x A100-80GB.
REVIEW_2 = dict(goal="knowledge", task="qa", examples=20_000, corpus_tokens=2_000_000_000, model="llama-3.1-8b",
                gpu="a100-80gb", num_gpus=4)
#: A corpus just above the 50M-token pre-training floor, on one GPU too small for a full fine-tune of the 8B model.
SMALL_GPU = dict(task="qa", examples=5000, corpus_tokens=60_000_000, model="llama-3.1-8b", gpu="l4")


@functools.cache
def cached(**profile) -> Plan:
    return make_plan(Profile(**profile))


def plan_of(profile: dict) -> Plan:
    return cached(**profile)


def text_of(plan: Plan) -> str:
    buffer = io.StringIO()
    render_plan(plan, Console(file=buffer, width=250, color_system=None))
    return buffer.getvalue()


def test_the_corpus_stage_trains_on_every_corpus_token_less_a_small_hold_out():
    plan = plan_of(dict(REVIEW_2))
    corpus = plan.stages[0]
    data, epochs = corpus.training.data, corpus.training.hyperparameters.epochs
    assert data.validation_ratio <= 0.05 and not data.kfold, "a corpus holds out a small share, not 20% or folds"
    assert corpus.estimate.time.train_tokens == int(2_000_000_000 * (1 - data.validation_ratio) * epochs)
    assert corpus.estimate.time.train_tokens >= 0.95 * 2_000_000_000, "sequences are packed full, not half"
    rules = {entry.rule for entry in corpus.rationale}
    assert "data.split-corpus" in rules and not {"data.split-80-20", "data.split-90-10"} & rules


def test_a_corpus_counts_its_tokens_whatever_sequence_length_the_model_takes():
    # gpt2 takes 1024 positions, half the corpus stage's usual 2048: the corpus has as many tokens either way
    plan = plan_of(dict(task="qa", examples=5000, corpus_tokens=50_000_000, model="gpt2", gpu="t4"))
    corpus = plan.stages[0]
    hp, data = corpus.training.hyperparameters, corpus.training.data
    assert hp.seq_len == 1024 and corpus.examples == 50_000_000 // 1024
    assert f"{corpus.examples:,} sequences of 1024 tokens" in corpus.purpose
    assert corpus.estimate.time.train_tokens == int(50_000_000 * (1 - data.validation_ratio) * hp.epochs)


def test_a_corpus_only_plan_trains_on_the_corpus_tokens_too():
    plan = plan_of(dict(goal="knowledge", task="qa", examples=0, corpus_tokens=500_000_000, model="qwen2.5-1.5b",
                        gpu="h100"))
    assert plan.stages == [] and plan.training is not None
    data, epochs = plan.training.data, plan.training.hyperparameters.epochs
    assert plan.estimate.time.train_tokens == int(500_000_000 * (1 - data.validation_ratio) * epochs)
    fired = {entry.rule for entry in plan.rationale}
    assert {"training.epochs-corpus", "data.split-corpus"} <= fired
    assert not {"data.size-table", "data.under-minimum", "data.under-recommended"} & fired


def test_the_human_text_gives_each_stage_its_time_and_cost_and_the_total():
    plan = plan_of(dict(REVIEW_2, price_per_hour=2.5))
    text = " ".join(text_of(plan).split())
    times = [stage.estimate.time for stage in plan.stages]
    for number, time in enumerate(times, 1):
        assert f"{time.train_tokens:,} tokens in ~{time.hours:.1f} h, cost {time.cost:,.2f}" in text, number
    total = sum(time.hours for time in times)
    assert (f"All 2 stages: ~{total:.1f} h (stage 1 ~{times[0].hours:.1f} h + stage 2 ~{times[1].hours:.1f} h), "
            f"cost {sum(time.cost for time in times):,.2f}") in text
    assert "Time of stage 2, task-tuning: ~" in text, "the plan's own estimate is the task stage's alone"
    assert total > 50 * times[1].hours, "the corpus stage dominates the run"


def test_the_task_stage_takes_half_the_low_end_of_its_methods_range():
    for profile in (dict(REVIEW_2), dict(REVIEW_2, method="lora"), dict(SMALL_GPU)):
        plan = plan_of(profile)
        task = plan.stages[1].training
        low = get_method(task.method).learning_rate[0]
        assert task.hyperparameters.learning_rate == low / 2, profile
        assert task.hyperparameters.param_groups[0].rule == "training.after-domain-pretraining"
    both_lora = plan_of(dict(REVIEW_2, method="lora")).stages
    assert both_lora[1].training.hyperparameters.learning_rate < both_lora[0].training.hyperparameters.learning_rate


def test_the_rate_rule_cites_the_seeds_numbers_it_follows():
    cited = rule("training.after-domain-pretraining")
    assert "1e-5" in cited.message and "5e-6" in cited.message and "Domain Adaptation" in cited.source


def test_full_fine_tuning_continues_pre_training_on_a_large_corpus_where_it_fits():
    corpus = plan_of(dict(REVIEW_2)).stages[0]
    assert corpus.method == "full" and corpus.training.hyperparameters.learning_rate == 1e-5  # the seeds' stage 1
    chosen_by = next(entry for entry in corpus.rationale if entry.rule.startswith("method."))
    assert chosen_by.rule == "method.full-continued-pretraining" and "3.1 Task Performance" in chosen_by.source
    assert corpus.estimate.fits


def test_lora_at_a_high_rank_when_full_fine_tuning_of_the_corpus_does_not_fit():
    corpus = plan_of(dict(SMALL_GPU)).stages[0]
    assert corpus.method in ("lora", "qlora") and corpus.estimate.fits
    method = corpus.training.hyperparameters.method
    assert method["r"] == 64 and method["use_rslora"] is True
    cited = {entry.rule: entry for entry in corpus.rationale}
    assert "arxiv.org/abs/2405.09673" in cited["training.rank-corpus"].source  # Biderman et al. 2024
    assert "memory.smaller-method" in cited and "method.full-continued-pretraining" in cited
    assert any("does not fit" in warning for warning in corpus.warnings)


def test_keeping_general_ability_keeps_lora_for_the_corpus_stage_too():
    corpus = plan_of(dict(REVIEW_2, keep_general_ability=True)).stages[0]
    assert corpus.method == "lora"
    assert "method.keep-general-ability" in {entry.rule for entry in corpus.rationale}


def test_every_setting_of_the_corpus_stage_has_its_rule():
    for profile in (dict(REVIEW_2), dict(SMALL_GPU)):
        corpus = plan_of(profile).stages[0]
        fired = {entry.rule for entry in corpus.rationale}
        assert all(entry.source for entry in corpus.rationale)
        assert {group.rule for group in corpus.training.hyperparameters.param_groups} <= fired
        settings = set()
        for rule_id in fired:
            if rule(rule_id).set:
                settings |= set(rule(rule_id).set.model_dump(exclude_none=True))
        wanted = {"learning_rate", "epochs", "validation_ratio", "warmup_ratio", "weight_decay",
                  "effective_batch_tokens"}  # the corpus stage takes a pre-training batch, in tokens
        if "r" in corpus.training.hyperparameters.method:
            wanted |= {"lora_rank", "lora_alpha", "use_rslora"}
        assert wanted <= settings, (profile, wanted - settings)


def test_the_corpus_stage_speaks_of_corpus_tokens_not_examples():
    for profile in (dict(REVIEW_2), dict(SMALL_GPU)):
        corpus = plan_of(profile).stages[0]
        messages = " ".join(entry.message for entry in corpus.rationale)
        assert not re.search(r"\d[\d,]* examples", messages), messages
        assert "Supervised tuning" not in messages
        assert not {"training.epochs-llm-sft", "training.epochs-llm-sft-large", "training.epochs-llm-sft-huge",
                    "data.size-table"} & {entry.rule for entry in corpus.rationale}
        assert f"{profile['corpus_tokens']:,}-token" in messages
        assert f"{profile['corpus_tokens']:,}-token" in corpus.purpose


def test_stage_warnings_stay_with_their_stage_and_are_said_once():
    plan = plan_of(dict(REVIEW_2, keep_general_ability=True))
    shared = [warning for warning in plan.stages[0].warnings if warning in plan.warnings]
    assert shared, "the keep-general-ability warning holds for both stages"
    warning_lines = [line for line in text_of(plan).splitlines() if line.startswith("warning:")]
    assert sum(shared[0][:60] in line for line in warning_lines) == 1
    full = plan_of(dict(REVIEW_2))  # only the corpus stage updates every weight: its forgetting warning is its own
    own = [warning for warning in full.stages[0].warnings if "catastrophic forgetting" in warning]
    assert own and own[0] not in full.warnings
    lines = [line for line in text_of(full).splitlines() if line.startswith("warning:")]
    assert any(line.startswith(f"warning: stage 1, continued-pretraining: {own[0][:40]}") for line in lines)
