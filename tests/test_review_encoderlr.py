"""Second review, defects 11, 14 and part of 15.

- 11: an encoder's body learning rate stays in the BERT grid (2e-5..5e-5) unless a measurement in this
  repository, made on validation data, shows a higher one holds, and then only for the model it measured.
- 14: freeze on a GPU without bf16 loads its frozen layers in fp16 and its trained top layers (and a new head)
  in fp32; the estimator prices each group in its own dtype, exactly as the backend loads them.
- 15: gpt-oss checkpoints (MXFP4) load dequantised to bf16 for training (Mxfp4Config(dequantize=True)).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.estimate import EstimateRequest, estimate
from advisor.estimate.estimator import shape_of
from advisor.estimate.memory import GIB, parameters
from advisor.knowledge_base import resolve_gpu, resolve_model
from advisor.manager import get_method
from advisor.models import Profile
from advisor.planner import make_plan
from tests.estimate import tiny_models as tm
from tests.test_fp16_frozen_base import (  # noqa: F401 (tiny_llama: a fixture)
    assert_estimated_bytes_are_real, load, tiny_llama, train_one_step_fp16,
)

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

    assert_estimated_bytes_are_real(model, footprint)


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
    from advisor.backends.hardware import Device, run_dtypes

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


# -- 11: an encoder's learning rate ---------------------------------------------------------------------------

MEASURED = "benchmarks/results/encoder_rate"
GRID = (2e-5, 5e-5)  # Devlin et al. 2018's fine-tuning grid


def _encoder(tmp_path, name: str, layers: int, hidden: int) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "bert", "num_hidden_layers": layers, "hidden_size": hidden, "intermediate_size": 4 * hidden,
        "num_attention_heads": 12, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}))
    return str(folder)


def _rates(plan) -> dict[str, tuple[float, str]]:
    return {group.name: (group.learning_rate, group.rule) for group in plan.training.hyperparameters.param_groups}


def _sweep() -> dict:
    return json.loads((Path(__file__).resolve().parents[1] / f"{MEASURED}.json").read_text())


def test_minilm_on_banking77_takes_the_measured_rates_and_cites_the_measurement():
    plan = make_plan(Profile(task="classification", examples=10003, model="all-minilm-l6-v2", gpu="cpu"))
    assert _rates(plan) == {"pretrained": (2e-4, "training.small-encoder-rate"),
                            "new": (2e-3, "training.small-encoder-rate")}
    entry = next(entry for entry in plan.rationale if entry.rule == "training.small-encoder-rate")
    assert f"{MEASURED}.md" in entry.source and "000_df4a6b7376d2b11b.txt" not in entry.source
    # The message gives each measured arm's validation accuracy, as the results file has it.
    for arm in _sweep()["results"]:
        assert f"{arm['validation_accuracy']:.2f}" in entry.message
    assert "validation" in entry.message and "test" not in entry.message


def test_the_measurement_chose_on_validation_data_and_its_best_arm_is_the_rule():
    sweep = _sweep()
    best = max(sweep["results"], key=lambda arm: arm["validation_accuracy"])
    assert (best["body_rate"], best["head_rate"]) == (2e-4, 2e-3)
    assert all(arm["validation_examples"] > 0 for arm in sweep["results"])
    assert not any("test" in key for arm in sweep["results"] for key in arm)
    from advisor import rules

    reference = rules.references()["advisor-encoder-rate-sweep"]
    assert reference.file == f"{MEASURED}.md" and reference.url is None
    root = Path(__file__).resolve().parents[1]
    assert all((root / ref.file).is_file() for ref in rules.references().values() if ref.file)
    assert str(sweep["rows"]) in reference.supports.replace(",", "")


@pytest.mark.parametrize("profile", [
    dict(examples=5000, layers=12, hidden=768),  # BERT-base
    dict(examples=5000, layers=4, hidden=312),  # a 4-layer small BERT: shallow, never measured
    dict(examples=5000, layers=6, hidden=768),  # DistilBERT's shape: 6 layers, but not the measured model
], ids=["bert-base", "4-layer", "6-layer 768 wide"])
def test_encoders_the_measurement_does_not_cover_keep_the_bert_grid(tmp_path, profile):
    model = _encoder(tmp_path, "encoder", profile["layers"], profile["hidden"])
    plan = make_plan(Profile(task="classification", examples=profile["examples"], model=model, gpu="cpu"))
    body, rule = _rates(plan)["pretrained"]
    assert GRID[0] <= body <= GRID[1] and rule == "training.encoder-rate"
    assert "training.small-encoder-rate" not in [entry.rule for entry in plan.rationale]


@pytest.mark.parametrize("profile", [dict(examples=50), dict(examples=50000), dict(examples=5000, method="freeze")],
                         ids=["50 rows (freeze)", "50,000 rows", "forced freeze"])
def test_minilm_outside_the_measured_setting_keeps_the_bert_grid(profile):
    plan = make_plan(Profile(task="classification", model="all-minilm-l6-v2", gpu="cpu", **profile))
    body, rule = _rates(plan)["pretrained"]
    assert GRID[0] <= body <= GRID[1] and rule == "training.encoder-rate"
    assert _rates(plan)["new"] == (1e-3, "training.new-layer-rate")


def test_the_sweep_trains_on_the_training_file_only_and_changes_only_the_rates(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from tests.estimate import scripts

    scripts.load("recipe_quality")  # encoder_rate imports its subset() and RESULTS
    sweep = scripts.load("encoder_rate")
    seen = []

    def fake_run(plan, data, output_dir):
        seen.append((plan.training.hyperparameters, data))
        main = SimpleNamespace(final_eval={"accuracy": 0.5, "macro_f1": 0.5}, validation_examples=5,
                               train_examples=20, steps=3, best_step=3, early_stopped=False)
        return SimpleNamespace(main=main)

    monkeypatch.setattr(sweep, "run_plan", fake_run)
    assert sweep.main(["--per-label", "3", "--output", str(tmp_path / "sweep")]) == 0
    assert [(hp.param_groups[1].learning_rate, hp.param_groups[0].learning_rate) for hp, _ in seen] == \
        [(body, head) for body, head, _ in sweep.ARMS]
    first = seen[0][0].model_dump(exclude={"learning_rate", "param_groups"})
    assert all(hp.model_dump(exclude={"learning_rate", "param_groups"}) == first for hp, _ in seen)
    assert all("test" not in data.name for _, data in seen)
    assert "test.csv is never read" in (tmp_path / "sweep.md").read_text()


def test_a_reference_has_a_url_or_a_results_file():
    from advisor.rules import Reference

    row = {"id": "a-b", "title": "A title", "supports": "what it says"}
    assert Reference.model_validate({**row, "file": "benchmarks/results/x.md"}).address == "benchmarks/results/x.md"
    for wrong in ({}, {"url": "https://a.b", "file": "benchmarks/results/x.md"}, {"file": "/etc/passwd"}):
        with pytest.raises(ValueError):
            Reference.model_validate({**row, **wrong})
