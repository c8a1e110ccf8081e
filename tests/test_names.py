"""Names people type resolve to the catalog entry: hub ids, case, spaces, vendor words, memory suffixes."""

import json

import pytest

from advisor import knowledge_base
from advisor.errors import UserError


@pytest.mark.parametrize("typed, expected", [
    ("meta-llama/Llama-3.1-8B", "llama-3.1-8b"),
    ("Llama-3.1-8B", "llama-3.1-8b"),
    ("llama 3.1 8b", "llama-3.1-8b"),
    ("openai-community/gpt2", "gpt2"),
    ("Qwen/Qwen2.5-0.5B", "qwen2.5-0.5b"),
    ("GPT2", "gpt2"),
])
def test_hub_ids_and_spellings_of_catalog_models_resolve_to_the_entry(typed, expected):
    assert knowledge_base.resolve_model(typed).id == expected


@pytest.mark.parametrize("typed, expected", [
    ("H100", "h100"), ("h100-80gb", "h100"), ("NVIDIA H100 80GB HBM3", "h100"),
    ("A100 80GB", "a100-80gb"), ("a100-80GB", "a100-80gb"), ("RTX 4090", "rtx4090"), ("rtx-4090", "rtx4090"),
    ("GeForce RTX 3090", "rtx3090"), ("T4", "t4"), ("CPU", "cpu"),
])
def test_gpu_names_ignore_case_and_accept_common_spellings(typed, expected):
    assert knowledge_base.resolve_gpu(typed).id == expected


def test_an_ambiguous_gpu_names_the_choices():
    with pytest.raises(UserError, match="'a100' is ambiguous: say which of a100-40gb, a100-80gb"):
        knowledge_base.resolve_gpu("a100")


def test_an_unknown_gpu_names_the_known_ones():
    with pytest.raises(UserError, match="unknown gpu 'h1'; known: cpu"):
        knowledge_base.resolve_gpu("h1")


def test_aliases_listed_in_the_catalog_are_names_too(monkeypatch):
    entry = knowledge_base.gpus()["h100"].model_copy(update={"aliases": ("hopper",)})
    monkeypatch.setattr(knowledge_base, "gpus", lambda: {"h100": entry})
    knowledge_base.gpu_names.cache_clear()
    try:
        assert knowledge_base.resolve_gpu("Hopper").id == "h100"
    finally:
        knowledge_base.gpu_names.cache_clear()


def test_a_hub_id_in_the_local_cache_is_a_model(tmp_path, monkeypatch):
    snapshot = tmp_path / "models--someone--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({
        "model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    entry = knowledge_base.resolve_model("someone/tiny")
    assert entry.architecture.num_layers == 2
    assert entry.source == "someone/tiny"


def test_a_hub_id_not_in_the_cache_says_what_is_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="model 'someone/else' is not in the local .*hub id whose config.json is in the local cache"):
        knowledge_base.resolve_model("someone/else")
