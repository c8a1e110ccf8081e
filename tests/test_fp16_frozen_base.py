"""On a GPU without bf16 (T4, V100) a frozen base loads in fp16, and the estimator prices what the backend loads.

advisor.precision: only weights that do not train may be fp16 (fp16 autocast's GradScaler refuses fp16
gradients), so LoRA and the other added-parameter methods get an fp16 base with fp32 adapters, while full
fine-tuning keeps fp32 master weights; a bf16 GPU is unchanged. Gemma 3's activations overflow fp16, so on
such a GPU it is planned in fp32 with a warning (rule training.precision-gemma3-fp16).

The backend checks run on CPU with real tensors: a tiny Llama loaded through `load_model` in fp16, one
training step under CPU fp16 autocast with a GradScaler, and the estimator's parameter, gradient and AdamW
bytes against the tensors'. CUDA's kernels (and fp16 overflow on real weights) are only checked where a GPU is.
"""

from __future__ import annotations

import pytest

from advisor.backends.hardware import Device, run_dtypes
from advisor.estimate import EstimateRequest, estimate
from advisor.estimate.estimator import shape_of
from advisor.estimate.memory import GIB, parameters
from advisor.knowledge_base import resolve_gpu, resolve_model
from advisor.manager import get_method
from advisor.models import Plan, Profile
from advisor.planner import make_plan
from estimate import scripts
from estimate import tiny_models as tm

TURING = Device(kind="cuda", name="Tesla T4", bf16=False)
GEMMA_RULE = "training.precision-gemma3-fp16"


def plan_of(**profile) -> Plan:
    return make_plan(Profile(**profile))


def weight_bytes_per_parameter(plan: Plan) -> float:
    return plan.estimate.memory.breakdown["weights"] * GIB / resolve_model(plan.profile.model).architecture.total_params()


# -- the plans -----------------------------------------------------------------------------------------


def test_a_3b_chat_model_on_a_t4_gets_lora_on_an_fp16_base_not_qlora():
    """Review #5: the base used to be priced in fp32 (12.0 GiB of weights), which forced QLoRA."""
    plan = plan_of(task="chat", examples=6000, model="llama-3.2-3b", gpu="t4")
    assert plan.recommendation.method == "lora"
    assert plan.training.precision == "fp16"
    assert plan.estimate.config["dtypes"] == "fp16 frozen base, fp16 mixed"
    assert plan.estimate.fits is True
    assert weight_bytes_per_parameter(plan) == pytest.approx(2, rel=1e-3)
    # The whole sequence length of the plan, not a cut one.
    assert plan.training.hyperparameters.seq_len == 2048
    assert GEMMA_RULE not in [entry.rule for entry in plan.rationale]


def test_full_fine_tuning_on_a_t4_keeps_fp32_master_weights():
    plan = plan_of(task="generation", examples=20000, model="gpt2", gpu="t4")
    assert plan.recommendation.method == "full" and plan.training.precision == "fp16"
    assert plan.estimate.config["dtypes"] == "fp16 mixed"
    assert weight_bytes_per_parameter(plan) == pytest.approx(4, rel=1e-3)


def _estimate(method: str, gpu: str, precision: str):
    architecture = resolve_model("qwen2.5-0.5b").architecture
    plugin = get_method(method)
    return estimate(EstimateRequest(
        architecture=architecture, footprint=plugin.footprint(architecture, plugin.hyperparameters({})),
        precision=precision, batch_size=1, seq_len=256, gpu=resolve_gpu(gpu),
    ))


@pytest.mark.parametrize(("method", "gpu", "precision", "dtypes", "weight_bytes"), [
    ("lora", "t4", "fp16", "fp16 frozen base, fp16 mixed", 2),
    ("prompt_tuning", "t4", "fp16", "fp16 frozen base, fp16 mixed", 2),
    ("full", "t4", "fp16", "fp16 mixed", 4),
    ("lora", "l4", "bf16", "bf16", 2),  # a bf16 GPU: unchanged
    ("lora", "l4", "mixed", "bf16 mixed", 4),
    ("full", "l4", "mixed", "bf16 mixed", 4),
])
def test_the_estimator_prices_the_dtypes_the_backend_loads(method, gpu, precision, dtypes, weight_bytes):
    result = _estimate(method, gpu, precision)
    params = resolve_model("qwen2.5-0.5b").architecture.total_params()
    assert result.config["dtypes"] == dtypes
    assert result.memory.breakdown["weights"] * GIB / params == pytest.approx(weight_bytes, rel=1e-3)


def test_an_fp16_base_is_priced_below_the_fp32_one_it_replaces_and_as_a_bf16_base():
    on_t4, on_l4 = _estimate("lora", "t4", "fp16"), _estimate("lora", "l4", "bf16")
    assert on_t4.memory.breakdown == on_l4.memory.breakdown  # the same bytes: 16-bit base, fp32 adapters
    assert on_t4.memory.peak_gib < _estimate("lora", "t4", "mixed").memory.peak_gib  # mixed: fp32 asked for


def test_a_bf16_gpu_plans_as_before():
    plan = plan_of(task="chat", examples=6000, model="llama-3.2-3b", gpu="l4")
    assert plan.training.precision == "bf16" and plan.estimate.config["dtypes"] == "bf16"
    assert weight_bytes_per_parameter(plan) == pytest.approx(2, rel=1e-3)


@pytest.mark.parametrize("model", ["gemma-3-4b", "gemma-3-1b"])
def test_gemma_3_on_a_t4_trains_in_fp32_and_says_why(model):
    plan = plan_of(task="chat", examples=6000, model=model, gpu="t4", language="de")
    assert plan.training.precision == "fp32" and plan.estimate.config["dtypes"] == "fp32"
    if "compute_dtype" in plan.training.hyperparameters.method:  # a 4-bit base dequantises to fp32 too
        assert plan.training.hyperparameters.method["compute_dtype"] == "float32"
    warning = next(text for text in plan.warnings if "Gemma 3" in text)
    assert "overflow" in warning and "fp32" in warning and "bf16" in warning
    cited = {entry.rule: entry.source for entry in plan.rationale}
    assert "unsloth.ai/blog/gemma3" in cited[GEMMA_RULE]
    assert "training.precision-fp16" not in cited  # its every setting is overridden


def test_gemma_3_on_a_bf16_gpu_keeps_bf16():
    plan = plan_of(task="chat", examples=6000, model="gemma-3-4b", gpu="l4")
    assert plan.training.precision == "bf16"
    assert GEMMA_RULE not in [entry.rule for entry in plan.rationale]
    assert not any("Gemma 3" in text for text in plan.warnings)


# -- the backend, with real tensors on CPU ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> str:
    """A 2-layer Llama saved in fp32, as a checkpoint from_pretrained reads."""
    from transformers import AutoConfig, AutoModelForCausalLM

    values = dict(tm.CONFIGS["llama"])
    config = AutoConfig.for_model(values.pop("model_type"), **values, pad_token_id=0)
    directory = tmp_path_factory.mktemp("tiny-llama")
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    return str(directory)


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def train_one_step_fp16(model, kind: str):
    """One step as the Trainer takes it with fp16=True: fp16 autocast, a GradScaler, AdamW; the optimizer."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable)
    scaler = torch.amp.GradScaler("cpu")
    inputs = tm.batch("llama", 2, 16)
    if kind == "classification":
        inputs["labels"] = torch.tensor([0, 1])
    with torch.autocast("cpu", dtype=torch.float16):
        loss = model(**inputs).loss
    scaler.scale(loss).backward()
    grads = nbytes(p.grad for p in trainable)
    scaler.step(optimizer)  # raises "Attempting to unscale FP16 gradients" for an fp16 trainable weight
    scaler.update()
    assert torch.isfinite(loss)
    return grads, optimizer


def load(source: str, method: str, kind: str = "causal_lm", **hp):
    from advisor.backends.loading import load_model

    plugin = get_method(method)
    method_hp = plugin.hyperparameters(hp)
    footprint = plugin.footprint(tm.architecture("llama"), method_hp)
    dtypes = run_dtypes("fp16", TURING, footprint.freezes_base_weights)
    model, _ = load_model(source, kind, dtypes, plugin, method_hp, labels=["no", "yes"], pad_token_id=0)
    return model, footprint, dtypes


METHODS = (("lora", {"r": 8}), ("adapter", {"bottleneck": 16}), ("ia3", {}), ("prompt_tuning", {"num_virtual_tokens": 8}),
           ("prefix", {"num_virtual_tokens": 8}))


@pytest.mark.parametrize("method, hp", METHODS, ids=[m for m, _ in METHODS])
def test_a_frozen_base_loads_in_fp16_its_additions_train_in_fp32_and_the_bytes_are_the_estimates(
        tiny_llama, method, hp):
    import torch

    model, footprint, dtypes = load(tiny_llama, method, **hp)
    assert dtypes.weights == "float16" and dtypes.autocast == "fp16" and footprint.freezes_base_weights
    frozen = [p for p in model.parameters() if not p.requires_grad]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert frozen and {p.dtype for p in frozen} == {torch.float16}
    assert trainable and {p.dtype for p in trainable} == {torch.float32}
    assert sum(p.numel() for p in trainable) == footprint.trainable_params

    assert_estimated_bytes_are_real(model, footprint)


def test_a_new_classification_head_on_an_fp16_base_trains_in_fp32(tiny_llama):
    """peft copies the fresh head (modules_to_save) in the base's dtype; the backend casts what trains to fp32."""
    import torch

    model, _, _ = load(tiny_llama, "lora", kind="classification", r=8)
    trainable = {name: p.dtype for name, p in model.named_parameters() if p.requires_grad}
    assert any("score" in name for name in trainable)
    assert set(trainable.values()) == {torch.float32}
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.float16}
    train_one_step_fp16(model, "classification")


def test_full_fine_tuning_on_a_t4_loads_fp32_weights(tiny_llama):
    import torch

    model, footprint, dtypes = load(tiny_llama, "full")
    assert not footprint.freezes_base_weights and dtypes.weights == "float32"
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    train_one_step_fp16(model, "causal_lm")


def test_fp16_weights_that_train_are_what_the_grad_scaler_refuses():
    """Why full fine-tuning keeps fp32 master weights: torch's GradScaler will not unscale fp16 gradients."""
    model = tm.build("llama", "float16", "full")
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        train_one_step_fp16(model, "causal_lm")


def test_the_gpu_harness_runs_lora_on_an_fp16_base(tmp_path):
    """benchmarks/gpu_memory_harness.py `lora_fp16`: the recipe's CPU path (its GPU rows calibrate the estimate)."""
    import json

    harness = scripts.load("gpu_memory_harness")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tm.CONFIGS["llama"]))
    args = harness.parse(["--device", "cpu", "--model", str(config), "--method", "lora_fp16", "--batch", "2",
                          "--seq", "8", "--steps", "3", "--rank", "8"])
    record = harness.measure(next(harness.points(args)))
    assert record["status"] == "ok" and record["hyperparameters"] == {"r": 8}
    assert record["trainable"] == tm.footprint("llama", "lora", r=8).trainable_params
    # A row measured on any GPU (the H100 here) is priced as the same fp16 base with fp32 adapters.
    accuracy = scripts.load("estimator_accuracy")
    request = accuracy.request_for({**record, "model": "llama-3.2-3b", "gpu": "h100"})
    assert estimate(request).config["dtypes"] == "fp16 frozen base, fp16 mixed"


# -- CUDA only ---------------------------------------------------------------------------------------------


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU")
def test_the_trainer_trains_lora_on_an_fp16_base_with_fp16_autocast_on_cuda(tiny_llama, tmp_path):
    """transformers' Trainer with fp16=True (its GradScaler) on the model load_model builds: finite losses."""
    import torch
    from transformers import Trainer, TrainingArguments

    model, _, dtypes = load(tiny_llama, "lora", r=8)
    rows = [{"input_ids": ids, "labels": ids} for ids in tm.batch("llama", 8, 16)["input_ids"].tolist()]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4,
                             report_to=[], logging_steps=1, **dtypes.trainer_flags())
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.float16}


def assert_estimated_bytes_are_real(model, footprint) -> None:
    """The estimator's weight, gradient and AdamW bytes for `footprint` on a T4 (fp16) equal the tiny Llama's
    real tensors' after one fp16-autocast step."""
    request = EstimateRequest(architecture=tm.architecture("llama"), footprint=footprint, precision="fp16",
                              batch_size=2, seq_len=16, gpu=resolve_gpu("t4"))
    predicted = parameters(request.architecture, footprint, shape_of(request))
    assert nbytes(model.parameters()) == predicted.resident
    gradients, optimizer = train_one_step_fp16(model, "causal_lm")
    assert gradients == predicted.gradients
    states = [t for state in optimizer.state.values() for name, t in state.items() if name != "step"]
    assert nbytes(states) == predicted.optimizer
