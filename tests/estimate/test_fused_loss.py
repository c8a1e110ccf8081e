"""The fused loss in the estimate: what the chunked loss really keeps, and what it saves at a 128K vocabulary.

Measured as tests/estimate/test_activations.py measures the standard loss: the
tensors autograd saves in the forward pass (saved_tensors_hooks), on tiny CPU
models with backends/chunked_loss.py installed. A chunk's recomputation in the
backward runs under torch.utils.checkpoint's own hooks, which outer hooks do
not see; its working set is the standard loss's per-logit bytes on one chunk.
"""

import pytest

from advisor.architecture import Architecture
from advisor.estimate import EstimateRequest, estimate, memory

from . import tiny_models as tm
from .test_activations import BATCH, SEQ, TOLERANCE, forward_state

CASES = [("llama", "full", {}), ("llama", "lora", {"r": 8}), ("gpt2", "lora", {"r": 8}), ("qwen2", "lora", {"r": 8})]


def _fused_state(family, method, hp, dtype) -> memory.ForwardState:
    shape = memory.Shape(precision="fp32" if dtype == "float32" else "bf16", batch=BATCH, seq=SEQ,
                         gradient_checkpointing=False, optimizer="adamw", head="lm", num_labels=2, fused_loss=True)
    return memory.forward_state(tm.architecture(family), tm.footprint(family, method, **hp), shape, kernel="cpu")


def _chunked(family, method, hp, dtype):
    pytest.importorskip("transformers")
    from advisor.backends.chunked_loss import install_chunked_loss

    return install_chunked_loss(tm.build(family, dtype, method, **hp))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("family, method, hp", CASES, ids=[f"{f}-{m}" for f, m, _ in CASES])
def test_the_chunked_loss_saves_what_the_formula_says(family, method, hp, dtype):
    measured = tm.saved_tensor_bytes(_chunked(family, method, hp, dtype), tm.batch(family, BATCH, SEQ))
    fused = _fused_state(family, method, hp, dtype)
    assert fused.saved_for_backward == pytest.approx(measured, rel=TOLERANCE)
    standard = forward_state(family, method, hp, dtype, checkpointing=False)
    assert fused.saved_for_backward < standard.saved_for_backward  # the log-probabilities are gone


def _llama_128k(**overrides) -> Architecture:
    config = dict(model_type="llama", num_hidden_layers=32, hidden_size=4096, intermediate_size=14336,
                  num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072)
    return Architecture.from_hf_config({**config, **overrides})


def test_at_a_128k_vocabulary_the_fused_loss_removes_the_logits_from_the_peak():
    from advisor.manager import get_method

    arch = _llama_128k()
    plugin = get_method("lora")
    request = EstimateRequest(architecture=arch, footprint=plugin.footprint(arch, plugin.hyperparameters({"r": 16})),
                              batch_size=4, seq_len=4096, gradient_checkpointing=True)
    standard, fused = estimate(request), estimate(request.model_copy(update={"fused_cross_entropy": True}))
    logits_gib = 4 * 4096 * 128256 * (2 + 4 + 8) / 2**30  # bf16 logits, fp32 log-probs, two fp32 gradients
    assert standard.memory.breakdown["logits_loss"] >= logits_gib * 0.99
    assert fused.memory.breakdown.get("logits_loss", 0) < 0.1 * logits_gib
    assert fused.memory.peak_gib < 0.8 * standard.memory.peak_gib
    assert fused.config["fused_cross_entropy"] is True
