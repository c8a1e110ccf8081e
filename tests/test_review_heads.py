"""Heads and their learning rates, as an expert reviewed them (review defects 1, 2 and part of 14).

- Every method that trains a new classification head gives it the rate the rationale names: full
  fine-tuning and layer freezing a "new" group beside the "pretrained" body; the adapter-family methods
  one "new" group for the head and the weights they add, and a rationale line that says so.
- An encoder trains a sequence classifier here and nothing else: `advisor plan` refuses any other task
  (and continued pre-training on a corpus) in one line naming what an encoder can do and a decoder.
- --keep-general-ability on a decoder classifier says, in one warning, that it does not apply.
"""

from __future__ import annotations

import json

import pytest

from advisor.cli.main import main
from advisor.knowledge_base import tasks
from advisor.models import Profile
from advisor.planner import make_plan

MINILM = "all-minilm-l6-v2"
TRAINS_PRETRAINED = ("full", "freeze")


@pytest.fixture(scope="module")
def bert_base(tmp_path_factory) -> str:
    """A BERT-base config.json (12 layers): deeper than the measured MiniLM recipe covers."""
    folder = tmp_path_factory.mktemp("bert-base-cased")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "bert", "num_hidden_layers": 12, "hidden_size": 768, "intermediate_size": 3072,
        "num_attention_heads": 12, "vocab_size": 28996, "max_position_embeddings": 512, "type_vocab_size": 2,
    }))
    return str(folder)


def plan(capsys, *argv) -> tuple[int, str, str]:
    code = main(["plan", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def groups_of(plan_) -> dict[str, tuple[float, str]]:
    return {group.name: (group.learning_rate, group.rule) for group in plan_.training.hyperparameters.param_groups}


def fired(plan_) -> list[str]:
    return [entry.rule for entry in plan_.rationale]


# -- defect 1: the new head's rate ------------------------------------------------------------------
def test_freezing_minilm_with_50_labels_trains_the_head_at_1e3_and_the_last_layer_at_3e5():
    """The MiniLM's measured rates (training.small-encoder-rate) are for full fine-tuning on thousands of rows."""
    result = make_plan(Profile(task="classification", examples=50, model=MINILM, gpu="cpu"))
    assert result.training.method == "freeze"
    assert groups_of(result) == {"pretrained": (3e-5, "training.encoder-rate"),
                                 "new": (1e-3, "training.new-layer-rate")}


def test_freezing_bert_base_with_80_labels_trains_the_head_at_1e3_and_the_last_layer_at_3e5(bert_base):
    result = make_plan(Profile(task="classification", examples=80, model=bert_base, gpu="cpu"))
    assert result.training.method == "freeze"
    assert groups_of(result) == {"pretrained": (3e-5, "training.encoder-rate"),
                                 "new": (1e-3, "training.new-layer-rate")}
    assert {"training.encoder-rate", "training.new-layer-rate"} <= set(fired(result))


@pytest.mark.parametrize("method", ["full", "freeze", "lora", "qlora", "dora", "rslora", "ia3", "adapter",
                                    "prompt_tuning"])
def test_every_method_that_trains_a_new_head_plans_the_rate_its_rationale_gives(method):
    result = make_plan(Profile(task="classification", examples=2000, model="llama-3.2-1b", gpu="a10g",
                               method=method))
    groups = groups_of(result)
    assert {rule for _, rule in groups.values()} <= set(fired(result))  # each rate's rule is in the rationale
    if method in TRAINS_PRETRAINED:
        # The body takes the method's rate; the head the new-layer rate the rationale states.
        assert groups["new"] == (1e-3, "training.new-layer-rate") and groups["pretrained"][0] < 1e-3
        assert "training.head-with-adapters" not in fired(result)
    else:
        # Nothing pre-trained trains: the head shares the method's rate with the weights the method adds.
        assert set(groups) == {"new"} and groups["new"][0] == result.training.hyperparameters.learning_rate
        assert "training.head-with-adapters" in fired(result) and "training.new-layer-rate" not in fired(result)


def test_freezing_a_causal_lm_trains_only_pretrained_weights():
    result = make_plan(Profile(examples=3000, model="llama-3.2-1b", gpu="a10g", method="freeze"))
    assert set(groups_of(result)) == {"pretrained"}
    assert not {"training.new-layer-rate", "training.head-with-adapters"} & set(fired(result))


def test_a_lora_plan_for_a_causal_lm_says_nothing_about_a_head():
    result = make_plan(Profile(examples=3000, model="llama-3.2-1b", gpu="a10g"))
    assert set(groups_of(result)) == {"new"}
    assert "training.head-with-adapters" not in fired(result)


# -- defect 2: an encoder trains a classifier, nothing else -------------------------------------------
GENERATIVE_TASKS = sorted(set(tasks()) - {"classification", "ner"})


@pytest.mark.parametrize("task", GENERATIVE_TASKS)
def test_an_encoder_is_refused_every_generative_task_in_one_line(task, capsys):
    code, out, err = plan(capsys, "--task", task, "--examples", 3000, "--model", MINILM, "--gpu", "cpu", "--json")
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: ")
    assert f"all-minilm-l6-v2 is an encoder: task '{task}' trains a language-model head" in err
    assert "(--task classification)" in err and "--model llama-3.2-1b" in err


def test_ner_on_a_bert_is_refused_as_token_classification_not_yet_supported(bert_base, capsys):
    code, out, err = plan(capsys, "--task", "ner", "--examples", 3000, "--model", bert_base, "--gpu", "t4")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "token classification (one label per token), which advisor does not support yet" in err
    assert "(--task classification)" in err and "choose a decoder for --task ner" in err


def test_the_default_task_is_named_as_the_default(capsys):
    code, _, err = plan(capsys, "--model", MINILM, "--gpu", "cpu")
    assert code == 2 and "task 'instruction' (the default)" in err


@pytest.mark.parametrize("examples", [0, 500])
def test_continued_pretraining_of_an_encoder_on_a_corpus_is_refused(examples, capsys):
    code, _, err = plan(capsys, "--task", "classification", "--examples", examples, "--corpus-tokens", 60_000_000,
                        "--model", MINILM, "--gpu", "cpu")
    assert code == 2 and err.count("\n") == 1
    assert "continued pre-training on the corpus is next-token training" in err
    assert "Drop --corpus-tokens to plan the classifier alone" in err


def test_a_corpus_too_small_for_its_own_stage_leaves_the_encoder_classifier_planned():
    result = make_plan(Profile(task="classification", examples=500, corpus_tokens=2_000_000, model=MINILM, gpu="cpu"))
    assert result.training is not None and not result.stages


@pytest.mark.parametrize("examples, quality", [(50, "high"), (500, "medium"), (5000, "low"), (50000, "high")])
def test_an_encoder_classifier_never_gets_a_replay_warning_or_a_language_model_rule(examples, quality):
    result = make_plan(Profile(task="classification", examples=examples, quality=quality, model=MINILM, gpu="cpu",
                               keep_general_ability=True, continual_updates=True))
    text = " ".join(result.warnings) + " ".join(entry.message for entry in result.rationale)
    assert "replay" not in " ".join(result.warnings)
    assert not {"risk.forgetting-full", "risk.forgetting-peft", "risk.keep-general-ability",
                "risk.keep-general-ability-classifier"} & set(fired(result))
    assert "language-model head" not in text


# -- defect 14 (part): --keep-general-ability on a decoder classifier -----------------------------------
def test_keep_general_ability_on_a_decoder_classifier_warns_once_that_it_does_not_apply():
    result = make_plan(Profile(task="classification", keep_general_ability=True, model="qwen3-4b", gpu="l4"))
    said = [warning for warning in result.warnings if "--keep-general-ability" in warning]
    assert len(said) == 1 and "outputs labels, not text" in said[0] and "qwen3-4b's language-model head" in said[0]
    assert "risk.keep-general-ability-classifier" in fired(result)
    assert "risk.keep-general-ability" not in fired(result)  # the replay advice is for a generator


@pytest.mark.parametrize("overrides", [dict(task="classification"), dict(task="instruction", keep_general_ability=True)])
def test_the_classifier_warning_fires_only_for_a_classifier_that_asked_to_keep_general_ability(overrides):
    result = make_plan(Profile(model="qwen3-4b", gpu="l4", **overrides))
    assert "risk.keep-general-ability-classifier" not in fired(result)
    assert not [warning for warning in result.warnings if "does not carry over to a classifier" in warning]
