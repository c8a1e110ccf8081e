"""Table-driven planner tests: profiles drawn from the seeds' own examples.

Each row: the profile, the approach and method we expect, and rule ids that
must be in the rationale (the citations that justify the answer).
"""

import io
import json
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.models import Plan, Profile
from advisor.planner import make_plan
from advisor.rules import all_rules

CASES = [
    # -- prompting / RAG: fine-tuning's poor candidates (seed 002, When to Fine-tune)
    ("one-off task", dict(one_off=True, examples=5000), "prompting", None, ["approach.one-off"]),
    ("facts change often", dict(goal="knowledge", dynamic_knowledge=True, examples=50000), "rag", None,
     ["approach.dynamic-knowledge"]),
    ("under 100 examples", dict(examples=40), "prompting", None, ["approach.too-few-examples"]),
    ("under 100 facts", dict(goal="knowledge", examples=60), "rag", None, ["approach.too-few-examples-knowledge"]),
    ("knowledge without scale", dict(goal="knowledge", task="qa", examples=3000), "rag", None,
     ["approach.knowledge-needs-scale"]),
    # -- fine-tuning: the method from the decision framework (seed 003 §5.1)
    ("embedded encoder, banking77", dict(task="classification", examples=10003, model="all-minilm-l6-v2", gpu="cpu"),
     "full_finetune", "full", ["method.full-small-model", "training.small-encoder-rate",
                               "data.stratify", "data.split-90-10", "training.precision-cpu"]),
    ("1B instruction on an A10G", dict(examples=3000, model="llama-3.2-1b", gpu="a10g"), "peft", "lora",
     ["approach.behavior-fine-tune", "method.lora-default", "training.rank-standard", "risk.forgetting-peft"]),
    ("70B on one H100", dict(examples=5000, model="llama-3.1-70b", gpu="h100"), "peft", "qlora",
     ["memory.quantized-fallback", "risk.quantized-slower"]),
    ("70B on one T4", dict(examples=5000, model="llama-3.1-70b", gpu="t4"), "peft", None,
     ["memory.nothing-fits"]),
    ("8B on a CPU", dict(examples=3000, model="llama-3.1-8b", gpu="cpu", gpu_memory_gib=64), "peft", "lora",
     ["method.needs-cuda"]),
    ("strict latency, many simple tasks", dict(task="classification", examples=2000, tasks=12, latency="strict",
                                               model="llama-3.2-1b", gpu="a10g"), "peft", "lora",
     ["method.strict-latency", "method.many-tasks-storage", "risk.latency-versus-tasks"]),
    # Soft prompts only from ~10B parameters (Lester et al. 2021); below that, one LoRA adapter per task.
    ("many simple tasks, 1B", dict(task="classification", examples=2000, tasks=12, latency="relaxed",
                                   model="llama-3.2-1b", gpu="a10g"), "peft", "lora",
     ["method.many-tasks-storage", "method.lora-default", "risk.adapters-per-task"]),
    ("many simple tasks, 70B", dict(task="classification", examples=2000, tasks=12, latency="relaxed",
                                    model="llama-3.1-70b", gpu="h100", num_gpus=4), "peft", "prompt_tuning",
     ["method.soft-prompt-many-simple-tasks", "risk.soft-prompt-tokens"]),
    ("knowledge at scale", dict(goal="knowledge", task="domain-adaptation", examples=200000, model="qwen2.5-1.5b",
                                gpu="h100"), "full_finetune", "full",
     ["approach.knowledge-fine-tune", "method.full-knowledge-at-scale", "risk.forgetting-full",
      "training.precision-full-mixed", "training.epochs-knowledge"]),
    ("hybrid behaviour + changing facts", dict(dynamic_knowledge=True, examples=4000, model="llama-3.2-3b",
                                               gpu="a100-40gb"), "peft", "lora", ["approach.hybrid-rag"]),
    ("small data", dict(task="classification", examples=300, model="llama-3.2-1b", gpu="l4"), "peft", "lora",
     ["data.kfold-small", "training.epochs-llm-sft", "training.small-data-dropout", "training.rank-simple",
      "data.under-recommended"]),
    ("below the task's minimum", dict(task="ner", examples=200, model="llama-3.2-1b", gpu="l4"), "peft", "lora",
     ["data.under-minimum"]),
    ("a decoder classifier asked to keep general ability", dict(task="classification", keep_general_ability=True,
                                                                model="qwen3-4b", gpu="l4"), "peft", "lora",
     ["risk.keep-general-ability-classifier", "training.head-with-adapters"]),
    ("low quality data", dict(examples=2000, quality="low", model="llama-3.2-1b", gpu="l4"), "peft", "lora",
     ["data.low-quality"]),
    ("gpt2 on a T4 (no bf16)", dict(task="generation", examples=20000, model="gpt2", gpu="t4"),
     "full_finetune", "full", ["training.precision-fp16", "method.full-small-model"]),
    # Gemma 3 overflows fp16 and a T4 has no bf16: fp32, where only the 4-bit base fits 16 GB.
    ("Gemma 3 on a T4 (no bf16)", dict(task="chat", examples=6000, model="gemma-3-4b", gpu="t4"), "peft", "qlora",
     ["training.precision-gemma3-fp16"]),
    # A T4 has no bf16: full fine-tuning keeps fp32 weights under fp16 autocast (advisor.precision), so its fp32
    # weights, gradients and AdamW states overflow 5 GiB while LoRA's frozen fp16 base fits (at 6 GiB full
    # fine-tuning fits with a paged 8-bit optimizer once the fused loss drops the 152K-vocabulary logits).
    ("small model, full FT too big for 5 GiB", dict(task="generation", examples=20000, model="qwen2.5-0.5b",
                                                    gpu="t4", gpu_memory_gib=5), "peft", "lora",
     ["method.full-small-model", "memory.smaller-method", "training.rank-complex"]),
    ("small model, LoRA too big for 1.75 GiB", dict(task="generation", examples=20000, model="qwen2.5-0.5b",
                                                     gpu="t4", gpu_memory_gib=1.75), "peft", "qlora",
     ["method.full-small-model", "memory.quantized-fallback"]),
    ("reasoning, 8B on an H100", dict(task="reasoning", examples=20000, model="llama-3.1-8b", gpu="h100"),
     "peft", "lora", ["training.rank-very-complex", "training.epochs-llm-sft-large"]),
    ("8B on 4 x 24 GB", dict(examples=3000, model="llama-3.1-8b", gpu="rtx4090", num_gpus=4, seq_len=4096),
     "peft", "lora", []),
    # Several nodes: hybrid sharding keeps parameter traffic inside each node; where the 70B only fits 80 GB cards
    # fully sharded or hybrid with its states in CPU memory, the faster by the estimate is planned and the other
    # stated with both speeds. A 4-bit base shards under FSDP (FSDP-QLoRA).
    ("8B full on 2 nodes x 8 H100", dict(examples=5000, model="llama-3.1-8b", gpu="h100", num_gpus=8, num_nodes=2,
                                         method="full"), "full_finetune", "full", ["memory.hybrid-sharding"]),
    ("70B full on 2 nodes x 8 H100", dict(examples=5000, model="llama-3.1-70b", gpu="h100", num_gpus=8, num_nodes=2,
                                          method="full"), "full_finetune", "full", ["memory.sharding-trade-off"]),
    ("70B QLoRA on 4 x 24 GB", dict(examples=5000, model="llama-3.1-70b", gpu="rtx4090", num_gpus=4, method="qlora"),
     "peft", "qlora", ["memory.fsdp-qlora", "memory.sharding"]),
    # What the person forced, where it does not fit or goes against what they asked (tests/test_review_forced.py).
    ("--method full, 70B on one H100", dict(examples=5000, model="llama-3.1-70b", gpu="h100", method="full"),
     "full_finetune", None, ["memory.forced-misfit"]),
    ("--method adapter, strict latency", dict(examples=3000, method="adapter", latency="strict", model="qwen3-4b",
                                              gpu="a10g"), "peft", "adapter", ["risk.forced-added-latency"]),
    ("--method full, 12 tasks", dict(examples=3000, method="full", tasks=12, model="llama-3.2-1b", gpu="a100-80gb"),
     "full_finetune", "full", ["risk.forced-full-copies", "risk.forgetting-full"]),
    ("--seq-len above the context", dict(examples=5000, seq_len=65536, model="qwen3-8b", gpu="h100"), "peft", "lora",
     ["data.seq-len-above-context"]),
    ("--batch-size 64 on 24 GB", dict(examples=5000, batch_size=64, model="llama-3.1-8b", gpu="rtx4090"), "peft",
     "lora", ["memory.batch-size-cut"]),
    # The corpus: too few examples beside a large one is a corpus-only plan; a small one is retrieved from,
    # except by a classifier, which reads no retrieved text.
    ("30 examples beside a 200M-token corpus", dict(examples=30, corpus_tokens=200_000_000, model="llama-3.2-1b",
                                                    gpu="h100"), "full_finetune", "full",
     ["approach.corpus-only-few-examples", "method.full-continued-pretraining"]),
    ("a classifier beside a 5M-token corpus", dict(task="classification", examples=2000, corpus_tokens=5_000_000,
                                                   model="llama-3.2-1b", gpu="l4"), "peft", "lora",
     ["approach.corpus-below-pretraining-classifier"]),
    ("adapters run with every request", dict(examples=3000, method="adapter", model="llama-3.2-1b", gpu="a10g"),
     "peft", "adapter", ["risk.added-latency"]),
]


def plan_of(overrides: dict) -> Plan:
    return make_plan(Profile(**overrides))


@pytest.mark.parametrize("name, overrides, approach, method, rule_ids", CASES, ids=[c[0] for c in CASES])
def test_profile_gets_expected_plan(name, overrides, approach, method, rule_ids):
    plan = plan_of(overrides)
    fired = [entry.rule for entry in plan.rationale]
    assert plan.recommendation.approach == approach, fired
    assert plan.recommendation.method == method, fired
    missing = [rule for rule in rule_ids if rule not in fired]
    assert not missing, f"missing {missing}; fired {fired}"
    for entry in plan.rationale:
        assert "§" in entry.source or "<https://" in entry.source or "<benchmarks/results/" in entry.source


def plan_with_long_prompts(tmp_path, monkeypatch) -> Plan:
    """Alpaca data whose few longest prompts fill the seq_len its 95th percentile sets (data.long-prompts-left-out)."""
    from advisor.planner import plan_for

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # the bytes/4 estimate on every machine
    short = {"instruction": "name the colour of the sky", "input": "", "output": "it is blue"}
    long = {"instruction": "describe the sea " * 200, "input": "", "output": "it is blue"}
    data = tmp_path / "long-prompts.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in [short] * 196 + [long] * 4), encoding="utf-8")
    return plan_for(Profile(data=str(data), model="llama-3.2-1b", gpu="l4", quality="high"))


def test_every_rule_fires_in_some_test_profile(monkeypatch, tmp_path):
    from tests.test_expert_panel import PANEL
    from tests.test_review_approach import SCENARIOS

    def reasons(plan: Plan) -> list:
        return plan.rationale + [entry for stage in plan.stages for entry in stage.rationale]

    fired = {entry.rule for _, overrides, *_ in CASES for entry in reasons(plan_of(overrides))}
    fired |= {entry.rule for scenario in PANEL + SCENARIOS for entry in reasons(scenario.plan())}
    fired |= {entry.rule for entry in plan_of(dict(examples=3000, model="llama-3.1-8b", gpu="rtx4090",
                                                   seq_len=16384, batch_size=16)).rationale}
    fired |= {entry.rule for entry in plan_without_bitsandbytes(monkeypatch).rationale}
    fired |= {entry.rule for entry in plan_with_long_prompts(tmp_path, monkeypatch).rationale}
    never = sorted(rule.id for rule in all_rules() if rule.id not in fired)
    assert not never, f"rules no test profile fires: {never}"


def test_prompting_and_rag_plans_have_no_estimate_or_training():
    plan = plan_of(dict(one_off=True))
    assert plan.estimate is None and plan.training is None
    assert {alt.method for alt in plan.alternatives} >= {"lora", "full"}


def test_classification_head_gets_the_new_layer_rate_with_its_rule():
    plan = plan_of(dict(task="classification", examples=5000, model="gpt2", gpu="a10g"))
    groups = {group.name: group for group in plan.training.hyperparameters.param_groups}
    assert groups["new"].learning_rate == 1e-3 and groups["new"].rule == "training.new-layer-rate"
    assert groups["pretrained"].learning_rate < groups["new"].learning_rate
    cited = {entry.rule: entry.source for entry in plan.rationale}
    assert "Learning Rate Schedules for Frozen Layers" in cited["training.new-layer-rate"]


def test_small_encoder_trains_body_and_head_at_the_measured_rates():
    plan = plan_of(dict(task="classification", examples=10003, model="all-minilm-l6-v2", gpu="cpu"))
    groups = {group.name: (group.learning_rate, group.rule) for group in plan.training.hyperparameters.param_groups}
    assert groups == {"pretrained": (2e-4, "training.small-encoder-rate"),
                      "new": (2e-3, "training.small-encoder-rate")}


def test_nothing_fits_recommends_no_method_and_the_smallest_hardware_that_fits():
    plan = plan_of(dict(examples=5000, model="llama-3.1-70b", gpu="t4"))
    assert plan.recommendation.method is None and plan.training is None
    assert plan.estimate.fits is False and "Nothing fits" in plan.recommendation.summary
    bigger, smaller = plan.alternatives[:2]
    assert bigger.fits is True and bigger.config["gpu"] != "t4"
    assert smaller.fits is True and smaller.config["model"] != "llama-3.1-70b"
    assert "A smaller model that fits this hardware" in plan.recommendation.summary
    assert all(alt.fits is False for alt in plan.alternatives[2:])


def test_prompting_plan_cites_no_method_rules():
    plan = plan_of(dict(goal="knowledge", dynamic_knowledge=True, examples=50000))
    assert not [entry.rule for entry in plan.rationale if entry.rule.startswith("method.")]


def test_forced_method_is_honoured_and_estimated():
    plan = plan_of(dict(examples=3000, model="llama-3.2-1b", gpu="a10g", method="ia3"))
    assert plan.recommendation.method == "ia3"
    assert plan.training.method == "ia3" and plan.estimate is not None


def encoder_trainable(overrides: dict) -> dict:
    """The profile made one an encoder trains: a classifier, with no corpus stage (the refusals of the rest are
    tested in tests/test_review_heads.py)."""
    if overrides["model"] != "all-minilm-l6-v2":
        return overrides
    corpus = overrides.get("corpus_tokens")
    return overrides | {"task": "classification", "corpus_tokens": corpus if (corpus or 0) < 10_000_000 else None}


PROFILES = st.fixed_dictionaries({
    "goal": st.sampled_from(["knowledge", "behavior"]),
    "task": st.sampled_from(["classification", "ner", "qa", "generation", "instruction", "reasoning",
                             "domain-adaptation"]),
    "examples": st.integers(0, 300000),
    "quality": st.sampled_from(["low", "medium", "high"]),
    "dynamic_knowledge": st.booleans(),
    "latency": st.sampled_from(["strict", "moderate", "relaxed"]),
    "tasks": st.integers(1, 20),
    "model": st.sampled_from(["gpt2", "qwen2.5-0.5b", "llama-3.2-1b", "llama-3.1-8b", "mistral-7b", "qwen2.5-7b",
                              "all-minilm-l6-v2"]),
    "gpu": st.sampled_from(["cpu", "t4", "l4", "rtx4090", "a100-80gb", "h100"]),
    "num_gpus": st.integers(1, 8),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROFILES)
def test_recommended_method_fits_and_json_matches_schema(overrides):
    plan = plan_of(encoder_trainable(overrides))
    document = json.loads(plan.model_dump_json())
    jsonschema.validate(document, Plan.model_json_schema())
    assert document["schema_version"] == 1
    if plan.estimate is not None and plan.estimate.fits:
        peak = plan.estimate.memory.peak_gib + plan.estimate.memory.overhead_gib
        assert peak <= plan.estimate.device_memory_gib
    if plan.recommendation.approach in ("prompting", "rag"):
        assert plan.training is None


RICH_PROFILES = st.fixed_dictionaries({
    "goals": st.lists(st.sampled_from(["knowledge", "behavior"]), min_size=1, max_size=2, unique=True),
    "task": st.sampled_from(["classification", "ner", "qa", "generation", "instruction", "reasoning",
                             "domain-adaptation", "chat", "code", "preference"]),
    "examples": st.sampled_from([0, 1, 40, 99, 150, 400, 999, 5000, 9999, 10001, 60000, 150000]),
    "quality": st.sampled_from(["low", "medium", "high"]),
    "dynamic_knowledge": st.booleans(),
    "one_off": st.booleans(),
    "latency": st.sampled_from(["strict", "moderate", "relaxed"]),
    "tasks": st.integers(1, 12),
    "model": st.sampled_from(["gpt2", "qwen2.5-0.5b", "llama-3.2-1b", "llama-3.1-8b", "all-minilm-l6-v2"]),
    "gpu": st.sampled_from(["cpu", "t4", "l4", "a100-80gb", "h100"]),
    "num_gpus": st.sampled_from([1, 2, 8]),
    "keep_general_ability": st.booleans(),
    "continual_updates": st.booleans(),
    "corpus_tokens": st.sampled_from([None, 0, 5_000_000, 50_000_000, 500_000_000]),
    "language": st.sampled_from(["en", "de", "ja"]),
})

PLACEHOLDER = re.compile(r"\{[a-z_][a-z0-9_]*(?::[^}]*)?\}")


def rendered(plan: Plan) -> str:
    from rich.console import Console

    from advisor.cli.render import render_plan

    buffer = io.StringIO()
    render_plan(plan, Console(file=buffer, width=400, color_system=None))
    return plan.model_dump_json() + "\n" + buffer.getvalue()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RICH_PROFILES)
def test_every_plan_text_is_rendered_from_facts_and_holds_together(overrides):
    if overrides["model"] == "llama-3.1-8b" and overrides["gpu"] in ("cpu", "t4"):
        overrides["gpu"] = "l4"  # keep the property test fast: nothing-fits plans search every GPU
    overrides = encoder_trainable(overrides)
    plan = plan_of(overrides)
    text = rendered(plan)
    assert not PLACEHOLDER.search(text), PLACEHOLDER.search(text).group(0)
    assert "Only 0 examples" not in text
    fired = {entry.rule for entry in plan.rationale}
    assert not {"risk.merge-for-latency", "risk.adapters-per-task"} <= fired
    if "knowledge" not in overrides["goals"]:
        assert "use RAG" not in plan.recommendation.summary
    if overrides["model"] == "all-minilm-l6-v2":
        assert plan.recommendation.approach != "prompting"
    if overrides["task"] == "classification" and "approach.corpus-only" not in fired:
        # (a corpus-only plan trains the language model on the corpus, where forgetting and replay do apply)
        assert "replay" not in " ".join(plan.warnings)
    if overrides["gpu"] == "cpu":
        assert "CUDA context" not in text
    if plan.training is not None and plan.training.data.kfold:
        assert plan.training.data.kfold <= max(overrides["examples"], 2)


def test_compromises_made_before_sharding_are_relaxed_once_sharding_fits():
    plan = plan_of(dict(examples=5000, model="llama-3.1-8b", gpu="a100-80gb", num_gpus=4, method="full"))
    hp = plan.training.hyperparameters
    assert plan.estimate.config["sharding"] == "fsdp"
    assert hp.optimizer == "adamw" and not hp.gradient_checkpointing
    assert hp.batch_size * hp.gradient_accumulation_steps * 4 == 16
    fired = {entry.rule for entry in plan.rationale}
    assert "memory.sharding" in fired and not {"memory.8bit-optimizer", "memory.gradient-checkpointing"} & fired


def test_an_8b_lora_plan_with_a_128k_vocabulary_at_long_context_fuses_the_loss_with_its_reason():
    plan = plan_of(dict(examples=3000, model="llama-3.1-8b", gpu="h100", seq_len=16384))
    assert plan.recommendation.method == "lora"
    assert plan.training.hyperparameters.fused_cross_entropy is True
    reason = next(entry for entry in plan.rationale if entry.rule == "memory.fused-cross-entropy")
    assert "never held at once" in reason.message and "arxiv.org/abs/2410.10989" in reason.source
    assert plan.estimate.config["fused_cross_entropy"] is True


def test_a_small_vocabulary_encoder_classifier_keeps_the_standard_loss():
    plan = plan_of(dict(task="classification", examples=10003, model="all-minilm-l6-v2", gpu="cpu"))
    assert plan.training.hyperparameters.fused_cross_entropy is False
    assert "memory.fused-cross-entropy" not in [entry.rule for entry in plan.rationale]
SQUEEZE = dict(task="generation", examples=3000, seq_len=4096, model="llama-3.1-8b", gpu="mi300x", gpu_memory_gib=20)


def plan_without_bitsandbytes(monkeypatch) -> Plan:
    """SQUEEZE on the MI300X as if bitsandbytes did not run there (every catalog card runs the pinned 0.50)."""
    from advisor import knowledge_base

    catalog = knowledge_base.gpus()
    patched = {**catalog, "mi300x": catalog["mi300x"].model_copy(update={"bitsandbytes": False})}
    with monkeypatch.context() as patch:
        patch.setattr(knowledge_base, "gpus", lambda: patched)
        return plan_of(SQUEEZE)


def test_a_card_without_bitsandbytes_gets_no_qlora(monkeypatch):
    assert plan_of(SQUEEZE).recommendation.method == "qlora"
    plan = plan_without_bitsandbytes(monkeypatch)
    assert plan.recommendation.method != "qlora"
    assert "method.needs-bitsandbytes" in {entry.rule for entry in plan.rationale}


@pytest.mark.parametrize("gpu, noted", [("h100", True), ("l40s", True), ("a100-80gb", False)])
def test_fp8_cards_are_told_the_plan_trains_in_16_bit(gpu, noted):
    plan = plan_of(dict(examples=3000, model="llama-3.2-1b", gpu=gpu))
    assert ("training.fp8-not-used" in {entry.rule for entry in plan.rationale}) is noted
    assert plan.training.precision != "fp8"


def test_no_fp8_note_where_nothing_is_trained():
    plan = plan_of(dict(examples=20, model="llama-3.2-1b", gpu="h100"))
    assert plan.recommendation.approach == "prompting"
    assert "training.fp8-not-used" not in {entry.rule for entry in plan.rationale}


@pytest.mark.parametrize("examples, rank, rslora", [(200000, 64, True), (3000, 16, False)])
def test_rslora_scaling_comes_with_a_high_rank_only(examples, rank, rslora):
    """alpha/r shrinks a rank-64 update 4x against rank 16; rsLoRA's alpha/sqrt(r) is turned on where the rank is high."""
    plan = plan_of(dict(task="code", examples=examples, model="llama-3.1-8b", gpu="h100"))
    method = plan.training.hyperparameters.method
    assert (method["r"], method["use_rslora"]) == (rank, rslora)
