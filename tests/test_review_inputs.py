"""The second expert review's input findings (#5, #6, #7, #8, #12 and part of #15), as the reviewer ran them.

- #5: a vision-language task on a text-only model is refused in one line naming the models that can see.
- #6: too few examples beside a large corpus plan the corpus stage alone, as none do, the examples serving as
  few-shot prompts; a corpus under the pre-training floor is retrieved from (a `rag` complement) unless the
  plan trains a classifier.
- #7: --keep-general-ability lowers no classifier's learning rate (the risk rule says it changes nothing there).
- #8: contradictory flags are refused in one line, by `plan`, its --profile file and the wizard alike.
- #12: the latency rules say what their sources say: 003 § 3.3 for added layers, PEFT for virtual tokens.
- #15: `summarization` and `extraction` are task families; the bf16 rule names a 4-bit base only where there is one.
"""

from __future__ import annotations

import json
import re
from typing import get_args

import pytest

from advisor import rules
from advisor.cli.plan import FLAGS
from advisor.errors import UserError
from advisor.knowledge_base import resolve_model, tasks
from advisor.model_tasks import refuse_untrainable_plan
from advisor.models import Profile, Task, validate_profile, validate_values
from advisor.planner import make_plan
from tests.fuzz.contract import assert_contract, run_cli


def plan_cli(*argv):
    outcome = run_cli(["plan", *map(str, argv)])
    assert_contract(outcome)
    return outcome


def refused(*argv) -> str:
    """The one error line `advisor plan ARGV --json` exits 2 with (nothing on stdout)."""
    outcome = plan_cli(*argv, "--json")
    assert outcome.code == 2 and outcome.out == "", str(outcome)
    return outcome.err


def fired(plan) -> list[str]:
    return [entry.rule for entry in plan.rationale]


def message(plan, rule_id: str) -> str:
    return next(entry.message for entry in plan.rationale if entry.rule == rule_id)


# -- #5: vision-language needs a model with a vision tower -------------------------------------------------------
def test_a_vision_language_task_on_a_text_only_model_is_refused_naming_the_models_that_see():
    err = refused("--task", "vision-language", "--examples", 5000, "--model", "qwen3-8b", "--gpu", "h100")
    assert "qwen3-8b is a text-only model" in err and "no vision tower" in err
    assert "gemma-3-4b, gemma-3-12b, gemma-3-27b" in err and "vision_config" in err
    assert "gemma-3-1b" not in err, "Gemma 3 1B is text-only"


def test_a_vision_language_task_on_gemma_3_12b_is_planned_and_says_execute_will_not_run_it():
    outcome = plan_cli("--task", "vision-language", "--examples", 5000, "--model", "gemma-3-12b", "--gpu", "h100",
                       "--json")
    plan = json.loads(outcome.out)
    assert outcome.code == 0 and plan["recommendation"]["method"] == "lora"
    assert any(warning.startswith("advisor execute reads text records only") and "will not run this plan" in warning
               for warning in plan["warnings"])
    text_plan = json.loads(plan_cli("--task", "instruction", "--model", "gemma-3-12b", "--gpu", "h100", "--json").out)
    assert not any("reads text records only" in warning for warning in text_plan["warnings"])


def test_a_local_directory_with_a_vision_config_is_a_vision_language_model(tmp_path):
    small = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=96, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=256, max_position_embeddings=2048)
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "gemma3", "text_config": small,
        "vision_config": dict(num_hidden_layers=1, hidden_size=32, intermediate_size=48, num_attention_heads=2,
                              image_size=28, patch_size=14, vision_use_head=False)}))
    plan = make_plan(Profile(task="vision-language", examples=20000, model=str(tmp_path), gpu="a10g"))
    assert plan.recommendation.method is not None


def test_execute_refuses_a_hand_edited_vision_language_plan_on_a_text_only_model():
    with pytest.raises(UserError) as refusal:
        refuse_untrainable_plan("vision-language", "qwen3-8b", resolve_model("qwen3-8b"))
    assert "plan.json profile.model 'qwen3-8b' is a text-only model" in refusal.value.message
    assert "profile.task is 'vision-language'" in refusal.value.message
    refuse_untrainable_plan("instruction", "qwen3-8b", resolve_model("qwen3-8b"))


def test_execute_refuses_a_vision_language_plan_it_cannot_feed_images_to_naming_the_plan_key():
    with pytest.raises(UserError) as refusal:
        refuse_untrainable_plan("vision-language", "gemma-3-4b", resolve_model("gemma-3-4b"))
    assert refusal.value.message.startswith("plan.json profile.task is 'vision-language'")
    assert "text records only" in refusal.value.message
    refuse_untrainable_plan("instruction", "gemma-3-4b", resolve_model("gemma-3-4b"))


# -- #6: the unlabelled corpus, with too few examples or below the pre-training floor ---------------------------
CORPUS = dict(corpus_tokens=200_000_000, model="llama-3.1-8b", gpu="h100")


def test_thirty_examples_beside_a_large_corpus_plan_what_none_do_and_say_why():
    few, none = make_plan(Profile(examples=30, **CORPUS)), make_plan(Profile(examples=0, **CORPUS))
    assert few.recommendation.approach == none.recommendation.approach == "full_finetune"
    assert few.training == none.training and few.estimate == none.estimate and not few.stages
    assert fired(few)[0] == "approach.corpus-only-few-examples" and fired(none)[0] == "approach.corpus-only"
    reason = message(few, "approach.corpus-only-few-examples")
    assert "Only 30 examples for the instruction task" in reason and "few-shot" in reason
    assert "200,000,000-token domain corpus" in few.recommendation.summary
    assert "The 30 labelled examples are too few" in few.recommendation.summary
    assert "labelled examples are too few" not in none.recommendation.summary


@pytest.mark.parametrize("examples, quality, corpus_only", [
    (99, "medium", True), (100, "medium", False), (150, "low", True), (500, "low", False),
])
def test_the_corpus_only_plan_ends_where_task_tuning_begins_quality_weighted(examples, quality, corpus_only):
    plan = make_plan(Profile(examples=examples, quality=quality, corpus_tokens=100_000_000, model="llama-3.2-1b",
                             gpu="h100"))
    assert ("approach.corpus-only-few-examples" in fired(plan)) is corpus_only
    assert bool(plan.stages) is not corpus_only, "from 100 quality-weighted examples: two stages"
    if not corpus_only:
        assert "approach.continued-pretraining" in fired(plan)


def test_a_corpus_below_the_pretraining_floor_is_retrieved_from():
    plan = make_plan(Profile(task="domain-adaptation", examples=0, corpus_tokens=30_000_000, model="gemma-3-12b",
                             gpu="h100"))
    assert plan.recommendation.approach == "prompting" and plan.recommendation.complements == ["rag"]
    assert plan.recommendation.summary.endswith("Complement it with rag.")
    assert "retrieves from it (RAG)" in message(plan, "approach.corpus-below-pretraining")


def test_a_rag_plan_is_no_complement_of_itself():
    plan = make_plan(Profile(goal="knowledge", examples=0, corpus_tokens=20_000_000, model="qwen3-1.7b", gpu="l4"))
    assert plan.recommendation.approach == "rag" and plan.recommendation.complements == []


def test_a_classifier_beside_a_small_corpus_gets_no_retrieval():
    plan = make_plan(Profile(task="classification", examples=2000, corpus_tokens=5_000_000, model="llama-3.2-1b",
                             gpu="l4"))
    assert plan.recommendation.complements == []
    assert "approach.corpus-below-pretraining-classifier" in fired(plan)
    assert "approach.corpus-below-pretraining" not in fired(plan)


# -- #7: keeping general ability changes nothing for a classifier ------------------------------------------------
def test_keeping_general_ability_lowers_no_classifier_rate():
    base = dict(task="classification", examples=4000, model="qwen3-4b", gpu="l4")
    kept, plain = make_plan(Profile(keep_general_ability=True, **base)), make_plan(Profile(**base))
    assert kept.training.hyperparameters == plain.training.hyperparameters
    assert "training.keep-general-ability-rate" not in fired(kept)
    assert "changes nothing here" in message(kept, "risk.keep-general-ability-classifier")


def test_keeping_general_ability_still_lowers_a_language_model_rate():
    base = dict(examples=4000, model="qwen3-4b", gpu="l4")
    kept, plain = make_plan(Profile(keep_general_ability=True, **base)), make_plan(Profile(**base))
    assert kept.training.hyperparameters.learning_rate < plain.training.hyperparameters.learning_rate
    assert "training.keep-general-ability-rate" in fired(kept)


# -- #8: flags that contradict each other ------------------------------------------------------------------------
@pytest.mark.parametrize("argv, says", [
    (["--one-off", "--continual-updates"], ("--one-off and --continual-updates contradict each other",)),
    (["--num-gpus", 4, "--gpu", "cpu"], ("--gpu cpu with --num-gpus 4", "one training process on one machine")),
    (["--num-nodes", 2, "--gpu", "CPU"], ("--gpu cpu with --num-nodes 2",)),
    (["--gpu-memory-gib", 40], ("--gpu-memory-gib 40 sets the memory of the device --gpu names",
                                "no --gpu was given", "a10g")),
])
def test_contradictory_flags_are_refused_in_one_line(argv, says):
    err = refused(*argv)
    assert all(part in err for part in says), err


@pytest.mark.parametrize("argv", [["--gpu", "cpu"], ["--gpu", "a100-40gb", "--gpu-memory-gib", 40],
                                  ["--num-gpus", 4, "--gpu", "a10g"], ["--continual-updates"]])
def test_consistent_flags_still_plan(argv):
    assert plan_cli(*argv, "--json").code in (0, 1)


def test_a_profile_file_is_checked_as_the_flags_are(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"one_off": True, "continual_updates": True}))
    assert "contradict each other" in refused("--profile", path)


def test_the_wizard_says_the_same_line_and_its_fields_check_their_own_value():
    from advisor.tui.answers import answer

    with pytest.raises(UserError) as refusal:
        answer(Profile(), {"one_off": True, "continual_updates": True})
    assert refusal.value.message in refused("--one-off", "--continual-updates")
    # the memory field, checked alone as it is typed, is not refused for the --gpu another field holds
    assert validate_values({"gpu_memory_gib": "40"}).gpu_memory_gib == 40
    assert validate_profile({"gpu": "a10g", "gpu_memory_gib": "40"}).gpu_memory_gib == 40


# -- #12: latency, as the sources say it -------------------------------------------------------------------------
SECTION_3_3 = "3.3 Deployment Considerations"


def test_no_rule_citing_003_section_3_3_blames_virtual_tokens():
    """003 § 3.3 (and its Table 3.1: prompt/prefix tuning, inference latency "None") says nothing against soft
    prompts; what the virtual tokens cost is cited to PEFT's documentation."""
    for rule in rules.all_rules():
        if SECTION_3_3 in rule.source:
            assert not re.search(r"virtual token|soft prompt|prefix", rule.message, re.I), rule.id
    for rule_id in ("risk.soft-prompt-tokens", "method.strict-latency-soft-prompts"):
        assert rules.rule(rule_id).source == "ref:hf-peft-prefix-tuning"


def test_a_soft_prompt_plan_names_its_virtual_tokens_and_an_adapter_plan_its_layers():
    soft = make_plan(Profile(examples=3000, latency="strict", method="prompt_tuning", model="qwen3-4b", gpu="a10g"))
    assert "risk.soft-prompt-tokens" in fired(soft) and "risk.added-latency" not in fired(soft)
    assert "virtual tokens" in message(soft, "risk.soft-prompt-tokens")
    adapter = make_plan(Profile(examples=3000, method="adapter", model="qwen3-4b", gpu="a10g"))
    assert "risk.added-latency" in fired(adapter) and "risk.soft-prompt-tokens" not in fired(adapter)
    assert "virtual tokens" not in message(adapter, "risk.added-latency")


def test_strict_latency_leaves_soft_prompts_out_for_their_own_reason():
    plan = make_plan(Profile(task="classification", examples=2000, tasks=12, latency="strict", model="llama-3.1-70b",
                             gpu="h100", num_gpus=4))
    why = {row.method: row.why_not for row in plan.alternatives}
    assert "(method.strict-latency-soft-prompts)" in why["prompt_tuning"]
    assert "(method.strict-latency-soft-prompts)" in why["prefix"]
    assert "(method.strict-latency)" in why["adapter"]


# -- #15: summarization and extraction; bf16 and the 4-bit base ---------------------------------------------------
def test_every_task_family_has_its_data_sizes_and_is_a_choice_of_the_cli_and_the_wizard():
    from advisor.tui.screens.task_data import labelled

    assert set(get_args(Task)) == set(tasks())
    assert {"summarization", "extraction"} <= set(FLAGS["--task"]["choices"])
    assert {"summarization", "extraction"} <= {value for _, value in labelled(get_args(Task), "task")}


@pytest.mark.parametrize("task, row, minimum, length", [
    ("summarization", "Text Generation", 1000, 2048), ("extraction", "Named Entity Recognition", 500, 1024),
])
def test_summarization_and_extraction_plan_with_the_closest_seed_row(task, row, minimum, length):
    plan = make_plan(Profile(task=task, examples=300, model="qwen3-4b", gpu="l4"))
    assert plan.training.hyperparameters.seq_len == length
    under = message(plan, "data.under-minimum")
    assert f"~{minimum} minimum for {task}" in under and f"'{row} (" in under


def test_the_bf16_rule_names_a_4bit_base_only_in_a_quantized_plan():
    full = make_plan(Profile(examples=200000, quality="high", model="qwen3-0.6b", gpu="h100"))
    lora = make_plan(Profile(examples=3000, model="llama-3.1-8b", gpu="a10g"))
    qlora = make_plan(Profile(examples=5000, model="llama-3.1-70b", gpu="h100"))
    assert (full.recommendation.method, lora.recommendation.method, qlora.recommendation.method) == \
        ("full", "lora", "qlora")
    for plan in (full, lora, qlora):
        assert "4-bit" not in message(plan, "training.precision-bf16")
    assert "training.quantized-compute-bf16" not in fired(full) + fired(lora)
    assert "4-bit base" in message(qlora, "training.quantized-compute-bf16")
    assert qlora.training.hyperparameters.method["compute_dtype"] == "bfloat16"
