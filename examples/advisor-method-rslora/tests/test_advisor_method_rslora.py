"""The rsLoRA example plugin, seen through advisor: discovered by entry point, counted, built, trained one step.

Run from the repository root: `pytest examples/advisor-method-rslora/tests`
(needs `pip install -e examples/advisor-method-rslora`, which `make install` does).
"""

from __future__ import annotations

import math
from importlib.metadata import entry_points

import pytest

from advisor import manager
from advisor.knowledge_base import resolve_model
from advisor.methods import trainable_parameter_count


def test_entry_point_is_installed():
    points = {point.name: point for point in entry_points(group="advisor")}
    assert points["rslora"].dist.name == "advisor-method-rslora"
    assert points["rslora"].value == "advisor_method_rslora"


def test_advisor_lists_it_as_third_party():
    info = next(info for info in manager.plugin_infos() if info.name == "rslora")
    assert (info.package, info.builtin, info.mergeable) == ("advisor-method-rslora", False, True)


def test_footprint_is_loras():
    arch = resolve_model("gpt2").architecture
    rslora, lora = manager.get_method("rslora"), manager.get_method("lora")
    values = {"r": 64, "target_modules": ["c_attn"]}
    assert rslora.footprint(arch, rslora.hyperparameters(values)) == lora.footprint(arch, lora.hyperparameters(values))


def test_build_scales_by_sqrt_rank_and_trains():
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, LlamaConfig

    from advisor.architecture import Architecture

    config = LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
    )
    method = manager.get_method("rslora")
    hp = method.hyperparameters({"r": 4, "alpha": 8})
    model = method.build(AutoModelForCausalLM.from_config(config), hp)

    scalings = {module.scaling["default"] for module in model.modules() if hasattr(module, "lora_A")}
    assert scalings == {8 / math.sqrt(4)}  # plain LoRA would scale by 8 / 4
    assert trainable_parameter_count(model) == method.footprint(Architecture.from_hf_config(config.to_dict()), hp).trainable_params

    ids = torch.randint(0, 96, (2, 8))
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    assert any(not torch.equal(old, new) for old, new in zip(before, trainable))
