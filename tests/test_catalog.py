"""The catalogs load, validate, and give the public parameter counts."""

import pytest

from advisor import knowledge_base
from advisor.errors import UserError


@pytest.mark.parametrize(
    "model_id, billions",
    [("llama-3.1-8b", 8.03), ("qwen2.5-7b", 7.62), ("llama-3.2-1b", 1.24), ("mistral-7b", 7.25)],
)
def test_total_params_match_public_figures(model_id, billions):
    params = knowledge_base.resolve_model(model_id).architecture.total_params()
    assert params / 1e9 == pytest.approx(billions, abs=0.01)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UserError, match="unknown model 'llama-9b'; known: gpt2"):
        knowledge_base.resolve_model("llama-9b")


def test_local_directory_with_config_is_a_model(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,'
        ' "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}'
    )
    entry = knowledge_base.resolve_model(str(tmp_path))
    assert entry.architecture.num_layers == 2
    assert entry.source == str(tmp_path.resolve())


def test_every_catalog_gpu_has_memory():
    assert {"cpu", "t4", "h100", "h200"} <= set(knowledge_base.gpus())


def test_embedded_model_source_holds_weights_and_tokenizer():
    from pathlib import Path

    source = Path(knowledge_base.resolve_model("all-minilm-l6-v2").source)
    assert (source / "config.json").is_file() and (source / "model.safetensors").is_file()
    assert (source / "tokenizer.json").is_file()
