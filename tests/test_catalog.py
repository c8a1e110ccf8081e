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


@pytest.mark.parametrize(
    "model_id, params",
    [
        ("qwen3-30b-a3b", 30_532_122_624), ("gemma-3-1b", 999_885_952), ("gemma-3-4b", 4_300_079_472),
        ("gemma-3-12b", 12_187_325_040), ("gemma-3-27b", 27_432_406_640), ("phi-4", 14_659_507_200),
        ("mistral-small-24b", 23_572_403_200), ("gpt-oss-20b", 20_914_757_184),
    ],
)
def test_current_models_count_what_their_model_cards_say(model_id, params):
    """Exact totals (the model cards round them: 30.5B, 1B, 4.3B, 12.2B, 27.4B, 14.7B, 24B, 21B)."""
    assert knowledge_base.resolve_model(model_id).architecture.total_params() == params


@pytest.mark.parametrize("model_id", ["gemma-3-4b", "gemma-3-12b", "gemma-3-27b"])
def test_multimodal_gemma_vision_tower_is_the_siglip_formula(model_id):
    from advisor.architecture import siglip_vision_params

    arch = knowledge_base.resolve_model(model_id).architecture
    vision = dict(hidden_size=1152, image_size=896, intermediate_size=4304, num_hidden_layers=27, patch_size=14,
                  vision_use_head=False)
    assert arch.vision_params == siglip_vision_params(vision, arch.hidden_size)


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


@pytest.mark.parametrize("model_id, active, uncounted", [("qwen3-30b-a3b", 3.3e9, 0),
                                                         ("gpt-oss-20b", 3.6e9, 201088 * 2880)])
def test_moe_active_parameters_are_what_the_model_cards_say(model_id, active, uncounted):
    """Qwen3-30B-A3B activates 3.3B of 30.5B; gpt-oss-20b 3.6B of 21B, leaving out its input embedding."""
    arch = knowledge_base.resolve_model(model_id).architecture
    assert arch.active_params() - uncounted == pytest.approx(active, rel=0.02)
    assert knowledge_base.resolve_model("qwen3-8b").architecture.active_params() == 8_190_735_360
