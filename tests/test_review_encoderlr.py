"""Second review, defects 11, 14 and part of 15.

- 11: an encoder's body learning rate stays in the BERT grid (2e-5..5e-5) unless a measurement in this
  repository, made on validation data, shows a higher one holds, and then only for the model it measured.
- 14: freeze on a GPU without bf16 loads its frozen layers in fp16 and its trained top layers (and a new head)
  in fp32; the estimator prices each group in its own dtype, exactly as the backend loads them.
- 15: gpt-oss checkpoints (MXFP4) load dequantised to bf16 for training (Mxfp4Config(dequantize=True)).
"""

from __future__ import annotations

import pytest

from advisor.estimate import EstimateRequest, estimate
from advisor.estimate.estimator import shape_of
from advisor.estimate.memory import GIB, parameters
from advisor.knowledge_base import resolve_gpu, resolve_model
from advisor.manager import get_method
from advisor.models import Profile
from advisor.planner import make_plan
from tests.estimate import tiny_models as tm
from tests.test_fp16_frozen_base import load, nbytes, tiny_llama, train_one_step_fp16  # noqa: F401 (a fixture)

# -- 14: freeze on an fp16 GPU --------------------------------------------------------------------------------


def test_freeze_on_a_t4_prices_frozen_layers_at_2_bytes_and_trained_ones_at_4():
    """Review #14: 3B weights used to be priced at 11.97 GiB (every weight fp32)."""
    plan = make_plan(Profile(task="classification", examples=3000, method="freeze", model="llama-3.2-3b", gpu="t4"))
    assert plan.training.method == "freeze" and plan.training.precision == "fp16"
    assert plan.estimate.config["dtypes"] == "fp16 frozen base, fp16 mixed"
    arch = resolve_model("llama-3.2-3b").architecture
    trained = arch.top_layers_params(plan.training.hyperparameters.method["trainable_layers"])
    expected = (arch.total_params() - trained) * 2 + trained * 4
    assert plan.estimate.memory.breakdown["weights"] == pytest.approx(expected / GIB, abs=1e-3)
    assert plan.estimate.memory.breakdown["weights"] < 7


def _freeze_estimate(gpu: str, precision: str, layers: int = 2):
    arch = resolve_model("qwen2.5-0.5b").architecture
    plugin = get_method("freeze")
    footprint = plugin.footprint(arch, plugin.hyperparameters({"trainable_layers": layers}))
    request = EstimateRequest(architecture=arch, footprint=footprint, precision=precision, batch_size=1,
                              seq_len=256, gpu=resolve_gpu(gpu))
    return arch, footprint, request


def test_the_trained_layers_of_an_fp16_base_have_fp32_gradients_and_adamw_states():
    arch, footprint, request = _freeze_estimate("t4", "fp16")
    priced = parameters(arch, footprint, shape_of(request))
    trained = footprint.trainable_params
    assert priced.weights == (arch.total_params() - trained) * 2 + trained * 4
    assert priced.gradients == trained * 4 and priced.optimizer == trained * 8
    # fp16 autocast keeps an fp16 copy of each trained matrix for the backward pass; the frozen lm_head has none.
    assert priced.autocast_copies == 2 * arch.top_layers_params(2, matrices_only=True) and priced.head_copy == 0


@pytest.mark.parametrize(("gpu", "precision", "dtypes", "weight_bytes", "gradient_bytes"), [
    ("l4", "bf16", "bf16", 2, 2),  # a bf16 GPU: the whole model bf16, as before
    ("l4", "mixed", "bf16 mixed", 4, 4),
    ("t4", "mixed", "fp16 mixed", 4, 4),  # fp32 weights asked for
])
def test_freeze_elsewhere_is_priced_as_before(gpu, precision, dtypes, weight_bytes, gradient_bytes):
    arch, footprint, request = _freeze_estimate(gpu, precision)
    priced = parameters(arch, footprint, shape_of(request))
    assert estimate(request).config["dtypes"] == dtypes
    assert priced.weights == arch.total_params() * weight_bytes
    assert priced.gradients == footprint.trainable_params * gradient_bytes


FREEZE = (({"trainable_layers": 1}), ({"trainable_layers": 2, "gradual_unfreezing": True}))


@pytest.mark.parametrize("hp", FREEZE, ids=["last layer", "both layers, gradual"])
def test_freeze_loads_frozen_layers_in_fp16_trained_ones_in_fp32_and_the_bytes_are_the_estimates(tiny_llama, hp):
    import torch

    model, footprint, dtypes = load(tiny_llama, "freeze", **hp)
    assert footprint.freezes_base_weights and dtypes.weights == "float16" and dtypes.autocast == "fp16"
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    layers = hp["trainable_layers"]
    assert trained == {name for name, _ in model.named_parameters()
                       if any(f"layers.{index}." in name for index in range(2 - layers, 2))}
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.float16}
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == footprint.trainable_params

    request = EstimateRequest(architecture=tm.architecture("llama"), footprint=footprint, precision="fp16",
                              batch_size=2, seq_len=16, gpu=resolve_gpu("t4"))
    predicted = parameters(request.architecture, footprint, shape_of(request))
    assert nbytes(model.parameters()) == predicted.resident
    gradients, optimizer = train_one_step_fp16(model, "causal_lm")
    assert gradients == predicted.gradients
    states = [t for state in optimizer.state.values() for name, t in state.items() if name != "step"]
    assert nbytes(states) == predicted.optimizer


def test_freeze_with_a_new_classification_head_on_an_fp16_base_trains_layer_and_head_in_fp32(tiny_llama):
    import torch

    model, _, _ = load(tiny_llama, "freeze", kind="classification", trainable_layers=1)
    trained = {name: p.dtype for name, p in model.named_parameters() if p.requires_grad}
    assert any(name.startswith("score") for name in trained) and any("layers.1." in name for name in trained)
    assert set(trained.values()) == {torch.float32}
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.float16}
    train_one_step_fp16(model, "classification")


# -- 15: gpt-oss stored in MXFP4 -----------------------------------------------------------------------------

#: The tiny gpt-oss with MXFP4's shape constraint: hidden and expert widths in whole 32-value blocks.
GPT_OSS = dict(tm.CONFIGS["gpt_oss"], intermediate_size=64)
#: What openai/gpt-oss-20b's config.json says.
MXFP4 = {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                             "model.embed_tokens", "lm_head"]}


@pytest.fixture(scope="module")
def mxfp4_gpt_oss(tmp_path_factory):
    """A 2-layer gpt-oss checkpoint stored as openai's is: experts as MXFP4 blocks and scales (uint8)."""
    import json

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    values = dict(GPT_OSS)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    folder = tmp_path_factory.mktemp("tiny-gpt-oss-mxfp4")
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    experts, hidden, width = GPT_OSS["num_local_experts"], GPT_OSS["hidden_size"], GPT_OSS["intermediate_size"]
    packed = {}
    for name in [key for key in weights if key.endswith(("experts.gate_up_proj", "experts.down_proj"))]:
        rows, columns = (2 * width, hidden) if name.endswith("gate_up_proj") else (hidden, width)
        del weights[name]
        packed[name] = (torch.randint(0, 256, (experts, rows, columns // 32, 16), dtype=torch.uint8, generator=generator),
                        torch.randint(120, 128, (experts, rows, columns // 32), dtype=torch.uint8, generator=generator))
        weights[f"{name}_blocks"], weights[f"{name}_scales"] = packed[name]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    stored = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**stored, "quantization_config": MXFP4}))
    return str(folder), packed


def test_an_mxfp4_checkpoint_is_asked_to_load_dequantised_and_no_other(mxfp4_gpt_oss, tiny_llama):
    from transformers import Mxfp4Config

    from advisor.backends import loading

    options = loading.dequantizing_options(mxfp4_gpt_oss[0], "lora", {"dtype": "bfloat16"})
    assert isinstance(options["quantization_config"], Mxfp4Config)
    assert options["quantization_config"].dequantize is True
    assert loading.dequantizing_options(tiny_llama, "lora", {"dtype": "bfloat16"}) == {}


def test_gpt_oss_loads_its_mxfp4_experts_dequantised_and_trainable(mxfp4_gpt_oss, monkeypatch):
    import torch
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    from advisor.backends import loading
    from advisor.backends.hardware import run_dtypes
    from advisor.backends.hardware import Device

    source, packed = mxfp4_gpt_oss
    asked = []
    real = loading.dequantizing_options
    monkeypatch.setattr(loading, "dequantizing_options", lambda *args: asked.append(real(*args)) or asked[-1])
    plugin = get_method("full")
    dtypes = run_dtypes("bf16", Device(kind="cpu", name="CPU"), False)
    model, _ = loading.load_model(source, "causal_lm", dtypes, plugin, plugin.hyperparameters({}), pad_token_id=0)
    assert asked and asked[0]["quantization_config"].dequantize is True
    assert not getattr(model, "is_quantized", False) and getattr(model.config, "quantization_config", None) is None
    for name, (blocks, scales) in packed.items():
        weight = model.get_parameter(name)
        assert weight.dtype == torch.float32 and weight.requires_grad
        assert torch.equal(weight.detach(), convert_moe_packed_tensors(blocks, scales, dtype=torch.float32))
    inputs = tm.batch("gpt_oss", 2, 8)
    model(**inputs).loss.backward()
    assert all(model.get_parameter(name).grad is not None for name in packed)


def test_qlora_on_an_mxfp4_checkpoint_is_one_line(mxfp4_gpt_oss):
    from advisor.backends import loading
    from advisor.errors import UserError

    source, _ = mxfp4_gpt_oss
    with pytest.raises(UserError, match="stored MXFP4-quantised.*cannot quantise it again for qlora"):
        loading.dequantizing_options(source, "qlora", {"quantization_config": object()})
