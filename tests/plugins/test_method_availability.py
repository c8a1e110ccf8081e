"""A method that cannot serve a model, task or GPU is unavailable at plan time, with its reason.

It is listed among the alternatives with that reason, never chosen, and
refused with one line under --method; the other methods are planned as
usual. No torch: the models are config.json files written by hand.
"""

from __future__ import annotations

import json

import pytest

from advisor import manager
from advisor.architecture import Architecture
from advisor.cli.main import main

#: A Llama of hidden size 64: smaller than the adapter's default bottleneck allows.
HIDDEN_64 = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 128, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 256, "tie_word_embeddings": False,
}


@pytest.fixture
def hidden_64(tmp_path):
    directory = tmp_path / "tiny-64"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(HIDDEN_64), encoding="utf-8")
    return directory


def plan(capsys, *argv):
    capsys.readouterr()
    code = main(["plan", "--examples", "2000", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def alternatives(plan_json: str) -> dict[str, dict]:
    return {row["method"]: row for row in json.loads(plan_json)["alternatives"]}


def test_a_plugin_default_that_does_not_fit_makes_only_that_method_unavailable(hidden_64, capsys):
    code, out, err = plan(capsys, "--model", hidden_64, "--gpu", "cpu", "--method", "lora", "--json")
    assert code == 0, err
    assert json.loads(out)["recommendation"]["method"] == "lora"
    adapter = alternatives(out)["adapter"]
    assert adapter["fits"] is False and adapter["peak_gib"] is None
    assert adapter["why_not"] == ("unavailable: its settings do not fit this model: invalid value 64 for "
                                  "'bottleneck': must be smaller than the hidden size 64")
    assert alternatives(out)["prompt_tuning"]["fits"] is True


def test_the_rules_never_choose_an_unavailable_method(hidden_64, capsys):
    code, out, err = plan(capsys, "--model", hidden_64, "--gpu", "a10g", "--task", "instruction", "--json")
    assert code == 0, err
    assert json.loads(out)["recommendation"]["method"] not in ("adapter", None)
    assert alternatives(out)["adapter"]["why_not"].startswith("unavailable: ")


def test_forcing_an_unavailable_method_is_one_line_exit_2(hidden_64, capsys):
    code, out, err = plan(capsys, "--model", hidden_64, "--gpu", "cpu", "--method", "adapter")
    assert code == 2 and out == ""
    assert err.startswith("error: --method adapter cannot be planned") and err.count("\n") == 1
    assert "must be smaller than the hidden size 64" in err


@pytest.mark.parametrize("model", ["gpt2", "all-minilm-l6-v2"])
def test_prefix_tuning_is_refused_for_classification_and_planned_for_a_causal_lm(model, capsys):
    code, out, err = plan(capsys, "--model", model, "--gpu", "a10g", "--task", "classification", "--json")
    assert code == 0, err
    assert alternatives(out)["prefix"]["why_not"].startswith("unavailable: prefix tuning cannot train a classification")
    code, _, err = plan(capsys, "--model", model, "--gpu", "a10g", "--task", "classification", "--method", "prefix")
    assert code == 2 and "cannot train a classification head" in err and "use prompt_tuning or lora" in err
    if model == "gpt2":
        code, out, err = plan(capsys, "--model", model, "--gpu", "a10g", "--task", "instruction", "--method", "prefix",
                              "--json")
        assert code == 0 and json.loads(out)["training"]["method"] == "prefix", err


def test_qlora_is_refused_without_cuda_under_method_and_planned_on_a_cuda_gpu(capsys):
    code, _, err = plan(capsys, "--model", "gpt2", "--gpu", "cpu", "--method", "qlora")
    assert code == 2 and "--method qlora cannot be planned" in err and "needs a CUDA GPU" in err
    code, out, err = plan(capsys, "--model", "gpt2", "--gpu", "t4", "--method", "qlora", "--json")
    assert code == 0 and json.loads(out)["training"]["method"] == "qlora", err


def test_only_prefix_refuses_a_head():
    arch = Architecture.from_hf_config(HIDDEN_64)
    refusing = {name for name, method in manager.all_methods().items() if method.unavailable(arch, "classification")}
    assert refusing == {"prefix"}
    assert not any(method.unavailable(arch, "lm") for method in manager.all_methods().values())
