"""Every family's parameter count, exact against the model transformers builds from its tiny config.

Each config is built on the meta device (no memory, exact shapes) the way the
backends load it: AutoModelForCausalLM for decoders (the multimodal Gemma 3
checkpoint is Gemma3ForConditionalGeneration, vision tower included), AutoModel
for encoders. The counts are compared tensor by tensor where it matters: the
layers, the 4-bit-quantisable linears, LoRA's adapters (peft on the meta
model) and the top layers freeze trains.
"""

import json

import pytest

from advisor.architecture import Architecture
from advisor.errors import UserError
from advisor.knowledge_base import resolve_model

from . import tiny_models as tm

SMALL = dict(num_hidden_layers=3, hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
             vocab_size=256, max_position_embeddings=128, pad_token_id=0, bos_token_id=1, eos_token_id=2)
MOE = dict(moe_intermediate_size=32, num_experts_per_tok=2)
CONFIGS = {
    "llama": dict(SMALL, model_type="llama"),
    "llama-bias": dict(SMALL, model_type="llama", attention_bias=True, head_dim=24),
    "mistral": dict(SMALL, model_type="mistral"),
    "qwen2": dict(SMALL, model_type="qwen2"),
    "qwen3": dict(SMALL, model_type="qwen3", head_dim=32),
    "qwen3-default-head-dim": dict(SMALL, model_type="qwen3"),
    "gemma2": dict(SMALL, model_type="gemma2", head_dim=16),
    "gemma3_text": dict(SMALL, model_type="gemma3_text", head_dim=16),
    "phi3": dict(SMALL, model_type="phi3"),
    "mixtral": dict(SMALL, model_type="mixtral", num_local_experts=4, num_experts_per_tok=2),
    "qwen3_moe": dict(SMALL, model_type="qwen3_moe", num_experts=4, **MOE),
    "qwen3_moe-dense-first": dict(SMALL, model_type="qwen3_moe", num_experts=4, mlp_only_layers=[0], **MOE),
    "gpt_oss": dict(SMALL, model_type="gpt_oss", num_local_experts=4, num_experts_per_tok=2, head_dim=16),
    "deepseek_v2": dict(SMALL, model_type="deepseek_v2", n_routed_experts=4, n_shared_experts=2, first_k_dense_replace=1,
                        q_lora_rank=None, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12,
                        **MOE),
    "deepseek_v3": dict(SMALL, model_type="deepseek_v3", n_routed_experts=4, n_shared_experts=1,
                        first_k_dense_replace=1, q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8,
                        qk_rope_head_dim=8, v_head_dim=12, n_group=1, topk_group=1, **MOE),
    "bert": dict(SMALL, model_type="bert"),
    "roberta": dict(SMALL, model_type="roberta"),
    "xlm-roberta": dict(SMALL, model_type="xlm-roberta", type_vocab_size=1),
    "gemma3": dict(model_type="gemma3", mm_tokens_per_image=4,
                   text_config=dict(SMALL, head_dim=16),
                   vision_config=dict(num_hidden_layers=1, hidden_size=32, intermediate_size=48, num_attention_heads=2,
                                      image_size=28, patch_size=14, vision_use_head=False)),
}
ENCODER_TYPES = ("bert", "roberta", "xlm-roberta")


def hf_config(name: str):
    from transformers import AutoConfig

    values = dict(CONFIGS[name])
    return AutoConfig.for_model(values.pop("model_type"), **values)


def meta_model(name: str):
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    config = hf_config(name)
    builder = AutoModel if config.model_type in ENCODER_TYPES else AutoModelForCausalLM
    with torch.device("meta"):
        return builder.from_config(config)


def count(model, keep=lambda name, parameter: True) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if keep(name, p))


def layer_number(name: str):
    parts = name.split(".")
    for key in ("layers", "layer", "h"):
        if key in parts and "vision_tower" not in parts:
            return int(parts[parts.index(key) + 1])
    return None


@pytest.mark.parametrize("name", CONFIGS)
def test_total_and_layer_counts_are_exact(name):
    model = meta_model(name)
    arch = Architecture.from_hf_config(hf_config(name).to_dict())
    assert arch.total_params() == count(model)
    assert arch.layers_params() == count(model, lambda n, p: layer_number(n) is not None)
    top = arch.num_layers - 1
    assert arch.top_layers_params(1) == count(model, lambda n, p: layer_number(n) == top)
    assert arch.top_layers_params(arch.num_layers) == arch.layers_params()


@pytest.mark.parametrize("name", CONFIGS)
def test_linear_modules_are_what_bitsandbytes_and_peft_see(name):
    """`is_module` matrices are exactly the layers' nn.Linear weights; routers and experts are not."""
    from torch import nn

    model = meta_model(name)
    arch = Architecture.from_hf_config(hf_config(name).to_dict())
    linear_weights = sum(module.weight.numel() for module_name, module in model.named_modules()
                         if isinstance(module, nn.Linear) and layer_number(module_name + ".") is not None)
    assert arch.matmul_params(modules_only=True) == linear_weights


@pytest.mark.parametrize("name", [n for n in CONFIGS if n not in ENCODER_TYPES])
def test_lora_all_linear_count_matches_peft(name):
    """The plugin's own peft build (a MoE model's experts through target_parameters included) against its count."""
    from advisor.manager import get_method

    arch = Architecture.from_hf_config(hf_config(name).to_dict())
    plugin = get_method("lora")
    hp = plugin.hyperparameters({"r": 4, "target_modules": "all-linear", "dropout": 0.0})
    trainable, _ = plugin.build(meta_model(name), hp).get_nb_trainable_parameters()
    assert plugin.footprint(arch, hp).trainable_params == trainable


def test_moe_experts_are_all_in_memory_and_only_the_routed_ones_compute():
    arch = Architecture.from_hf_config(hf_config("mixtral").to_dict())
    experts = [linear for linear in arch.layer_linears() if linear.role == "expert"]
    per_expert = sum(linear.in_features * linear.out_features for linear in experts)
    attention_and_router = sum(l.params for l in arch.layer_linears() if l.role != "expert")
    assert arch.active_matmul_params_per_layer() == attention_and_router + 2 * per_expert
    assert arch.matmul_params() == arch.num_layers * (attention_and_router + 4 * per_expert)




def test_lora_refuses_expert_weights_by_name():
    """target_modules lists linear modules; the experts' weights are reached with expert_r, which the refusal names."""
    from advisor.manager import get_method

    arch = Architecture.from_hf_config(hf_config("qwen3_moe").to_dict())
    plugin = get_method("lora")
    with pytest.raises(UserError, match="gate_up_proj.*expert.*expert_r"):
        plugin.footprint(arch, plugin.hyperparameters({"target_modules": ["q_proj", "gate_up_proj"]}))


@pytest.mark.parametrize("model_type, reason", [("t5", "encoder-decoder"), ("modernbert", "not priced"),
                                                ("falcon", "unsupported")])
def test_an_unpriced_config_is_refused_by_name(tmp_path, model_type, reason):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type, "d_model": 64}))
    with pytest.raises(UserError, match=reason) as refused:
        resolve_model(str(tmp_path))
    assert f"'{model_type}'" in str(refused.value) and "\n" not in str(refused.value)


def test_a_local_qwen3_moe_folder_keeps_its_experts(tmp_path):
    hf_config("qwen3_moe").save_pretrained(tmp_path)
    entry = resolve_model(str(tmp_path))
    assert entry.architecture.num_experts == 4
    assert entry.architecture.total_params() == count(meta_model("qwen3_moe"))


def test_tiny_models_families_still_read(monkeypatch):
    for name, config in tm.CONFIGS.items():
        assert Architecture.from_hf_config(config).family == name.removesuffix("_normalised").removesuffix("_grouped")


@pytest.mark.parametrize("name", ["deepseek_v2", "deepseek_v3"])
def test_mla_keys_a_config_leaves_out_take_transformers_defaults(name):
    """A config.json without q_lora_rank & co. is read as transformers reads it (q_lora_rank 1536, not None)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from advisor.architecture import MLA_DEFAULTS

    raw = {key: value for key, value in CONFIGS[name].items() if key not in MLA_DEFAULTS}
    values = dict(raw)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(values.pop("model_type"), **values))
    assert Architecture.from_hf_config(raw).total_params() == count(model)
