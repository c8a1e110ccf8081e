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


#: Gemma 3's SigLIP vision tower as the 4B-27B checkpoints publish it (test above).
GEMMA3_VISION = dict(hidden_size=1152, image_size=896, intermediate_size=4304, num_hidden_layers=27, patch_size=14,
                     num_attention_heads=16, vision_use_head=False)


def published_config(entry) -> dict:
    """The config.json keys that shape the model, from the catalog entry (the inverse of Architecture.from_hf_config)."""
    arch = entry.architecture
    if arch.family == "gpt2":
        return dict(n_layer=arch.num_layers, n_embd=arch.hidden_size, n_inner=arch.intermediate_size,
                    n_head=arch.num_heads, vocab_size=arch.vocab_size, n_positions=arch.max_position_embeddings,
                    tie_word_embeddings=arch.tied_embeddings)
    config = dict(num_hidden_layers=arch.num_layers, hidden_size=arch.hidden_size,
                  intermediate_size=arch.intermediate_size, num_attention_heads=arch.num_heads,
                  vocab_size=arch.vocab_size, tie_word_embeddings=arch.tied_embeddings,
                  max_position_embeddings=arch.max_position_embeddings)
    optional = dict(num_key_value_heads=arch.num_kv_heads, head_dim=arch.head_dim,
                    type_vocab_size=arch.type_vocab_size, attention_bias=arch.attention_bias)
    config.update({key: value for key, value in optional.items() if value})
    if arch.family == "qwen3_moe":
        config.update(num_experts=arch.num_experts, num_experts_per_tok=arch.experts_per_token,
                      moe_intermediate_size=arch.moe_intermediate_size, norm_topk_prob=arch.norm_topk_prob,
                      mlp_only_layers=list(range(arch.dense_layers)))
    if arch.family == "gpt_oss":
        config.update(num_local_experts=arch.num_experts, num_experts_per_tok=arch.experts_per_token)
    if entry.model_type == "gemma3":  # multimodal: the text shape is its text_config
        return dict(text_config=config, vision_config=GEMMA3_VISION)
    return config


@pytest.mark.parametrize("model_id", sorted(knowledge_base.models()))
def test_every_catalog_model_builds_from_its_model_type_with_the_same_parameters(model_id):
    """transformers builds each entry from its recorded model_type and dimensions (meta device: no memory), and the
    model it builds has exactly the parameters the estimator counts: the model_type is the published one."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    entry = knowledge_base.resolve_model(model_id)
    assert entry.model_type, "every catalog entry records its config.json's model_type"
    config = AutoConfig.for_model(entry.model_type, **published_config(entry))
    builder = AutoModel if entry.architecture.kind == "encoder" else AutoModelForCausalLM
    with torch.device("meta"):
        model = builder.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == entry.architecture.total_params()
