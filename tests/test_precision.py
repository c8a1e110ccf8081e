"""Precision in one place: the table, and the estimator pricing what the backend will run."""

from __future__ import annotations

import pytest

from advisor.estimate import EstimateRequest, estimate
from advisor.knowledge_base import resolve_gpu, resolve_model
from advisor.manager import get_method
from advisor.precision import resolve_dtypes

NO_BF16 = dict(cuda=True, bf16=False)
BF16 = dict(cuda=True, bf16=True)
CPU = dict(cuda=False, bf16=False)


@pytest.mark.parametrize(("plan", "device", "weights", "autocast", "compute", "recipe"), [
    ("bf16", BF16, "bfloat16", "bf16", "bfloat16", "bf16"),
    ("mixed", BF16, "float32", "bf16", "bfloat16", "mixed"),
    ("fp16", BF16, "float32", "fp16", "float16", "mixed"),
    ("fp32", BF16, "float32", None, "float32", "fp32"),
    ("bf16", NO_BF16, "float32", "fp16", "float16", "mixed"),
    ("mixed", NO_BF16, "float32", "fp16", "float16", "mixed"),
    ("fp16", NO_BF16, "float32", "fp16", "float16", "mixed"),
    ("bf16", CPU, "float32", None, "float32", "fp32"),
    ("mixed", CPU, "float32", None, "float32", "fp32"),
])
def test_the_table_for_a_method_that_trains_base_weights(plan, device, weights, autocast, compute, recipe):
    dtypes = resolve_dtypes(plan, **device, frozen_base=False)
    assert (dtypes.weights, dtypes.autocast, dtypes.compute, dtypes.recipe) == (weights, autocast, compute, recipe)
    assert dtypes.gradients == dtypes.optimizer_states == dtypes.weights


@pytest.mark.parametrize(("plan", "device", "weights", "autocast", "recipe"), [
    ("bf16", BF16, "bfloat16", "bf16", "bf16"),
    ("mixed", BF16, "float32", "bf16", "mixed"),
    ("fp16", BF16, "float16", "fp16", "bf16"),
    ("fp32", BF16, "float32", None, "fp32"),
    ("bf16", NO_BF16, "float16", "fp16", "bf16"),
    ("mixed", NO_BF16, "float32", "fp16", "mixed"),  # mixed asks for fp32 weights, frozen or not
    ("fp16", NO_BF16, "float16", "fp16", "bf16"),
    ("fp16", CPU, "float32", None, "fp32"),
])
def test_the_table_for_a_frozen_base(plan, device, weights, autocast, recipe):
    """Only a frozen base loads in fp16; what trains of it (adapters, a new head) keeps fp32 gradients."""
    dtypes = resolve_dtypes(plan, **device, frozen_base=True)
    assert (dtypes.weights, dtypes.autocast, dtypes.recipe) == (weights, autocast, recipe)
    if weights == "float16":
        assert dtypes.gradients == dtypes.optimizer_states == "float32"


@pytest.mark.parametrize("frozen_base", [True, False])
@pytest.mark.parametrize("plan", ["bf16", "mixed", "fp16", "fp32"])
def test_a_device_without_bf16_never_gets_bf16(plan, frozen_base):
    dtypes = resolve_dtypes(plan, **NO_BF16, frozen_base=frozen_base)
    assert "bf" not in f"{dtypes.weights} {dtypes.autocast} {dtypes.compute}"
    assert dtypes.trainer_flags()["bf16"] is False


def _full_estimate(gpu: str, precision: str):
    architecture = resolve_model("qwen2.5-0.5b").architecture
    method = get_method("full")
    return estimate(EstimateRequest(
        architecture=architecture, footprint=method.footprint(architecture, method.hyperparameters({})),
        precision=precision, batch_size=1, seq_len=256, gpu=resolve_gpu(gpu),
    ))


def test_fp16_is_priced_as_fp32_weights_under_autocast_as_the_backend_runs_it():
    """A T4 plan: the backend trains fp32 weights + fp16 autocast, so the weights cost 4 bytes each."""
    on_t4 = _full_estimate("t4", "fp16")
    on_h100_mixed = _full_estimate("h100", "mixed")
    on_h100_bf16 = _full_estimate("h100", "bf16")
    assert on_t4.memory.breakdown["weights"] == pytest.approx(on_h100_mixed.memory.breakdown["weights"])
    assert on_t4.memory.breakdown["weights"] == pytest.approx(2 * on_h100_bf16.memory.breakdown["weights"], rel=1e-3)


def test_bf16_asked_on_a_t4_is_priced_as_what_the_t4_runs():
    assert _full_estimate("t4", "bf16").memory.peak_gib == _full_estimate("t4", "fp16").memory.peak_gib
