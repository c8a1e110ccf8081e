"""Activation bytes: the op-by-op formula against what autograd really keeps, on tiny CPU models.

Two measurements, both on random-init models built from config (tiny_models.py):
- without checkpointing, the tensors autograd saves (saved_tensors_hooks, one
  storage once, parameters left out) against `ForwardState.saved_for_backward`;
- with and without checkpointing, every byte the forward pass leaves allocated
  (profiler memory events: saved tensors, checkpointed layer inputs, the
  logits, the KV cache) against `ForwardState.alive`.

The formula runs with kernel="cpu": CPU dropout keeps a mask in the input's
dtype (CUDA's fused dropout: 1-byte bool), CPU LayerNorm keeps its statistics in
the input dtype (CUDA: fp32), and the prefix mask is not padded to 16 columns
(CUDA's memory-efficient kernel pads it). Attention dropout is 0 in the tiny
configs: CUDA's flash kernel keeps only an RNG state for it, but CPU SDPA falls
back to the math path and keeps whole attention matrices. Otherwise CPU SDPA
(flash attention for CPU) saves what CUDA's flash/memory-efficient kernels
save: q, k, v, output, log-sum-exp.

Tolerance 2%: the formula leaves out a few per-example tensors (the classifier
head's, peft's prompt index tensors) and, with checkpointing, each layer's CPU
RNG state (5056 bytes; on CUDA a 16-byte philox state), added here explicitly.
"""

import pytest

from advisor.estimate import memory

from . import tiny_models as tm

FAMILIES = ("llama", "gpt2", "bert")  # qwen2 runs llama's code path (its parameters are tested)
METHODS = (
    ("full", {}),
    ("lora", {"r": 8}),
    ("freeze", {"trainable_layers": 1}),
    ("prompt_tuning", {"num_virtual_tokens": 8}),
    ("prefix", {"num_virtual_tokens": 8}),
)
BATCH, SEQ = 2, 64
#: torch.get_rng_state(): the CPU generator state non-reentrant checkpointing keeps per layer.
CPU_RNG_STATE_BYTES = 5056
TOLERANCE = 0.02


def forward_state(family: str, method: str, hp: dict, dtype: str, checkpointing: bool) -> memory.ForwardState:
    shape = memory.Shape(
        precision="fp32" if dtype == "float32" else "bf16", batch=BATCH, seq=SEQ,
        gradient_checkpointing=checkpointing, optimizer="adamw", head=tm.head(family), num_labels=2,
    )
    return memory.forward_state(tm.architecture(family), tm.footprint(family, method, **hp), shape, kernel="cpu")


#: Prefix tuning cannot train a classification head (plugins/prefix.py): the planner never plans it for BERT here.
SAVED_TENSOR_CASES = [
    pytest.param(family, method, hp, id=f"{family}-{method}")
    for family in FAMILIES for method, hp in METHODS
    if not (method == "prefix" and tm.head(family) == "classification")
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("family, method, hp", SAVED_TENSOR_CASES)
def test_saved_tensors_match_the_formula(family, method, hp, dtype):
    model = tm.build(family, dtype, method, **hp)
    measured = tm.saved_tensor_bytes(model, tm.batch(family, BATCH, SEQ))
    predicted = forward_state(family, method, hp, dtype, checkpointing=False).saved_for_backward
    assert predicted == pytest.approx(measured, rel=TOLERANCE)


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "checkpointed"])
@pytest.mark.parametrize("method, hp", METHODS[:4], ids=[m for m, _ in METHODS[:4]])
@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_bytes_alive_after_forward_match_the_formula(family, method, hp, checkpointing):
    model = tm.build(family, "bfloat16", method, **hp)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    measured = tm.bytes_alive_after_forward(model, tm.batch(family, BATCH, SEQ))
    state = forward_state(family, method, hp, "bfloat16", checkpointing)
    rng_states = CPU_RNG_STATE_BYTES * tm.architecture(family).num_layers if checkpointing else 0
    assert state.alive + rng_states == pytest.approx(measured, rel=TOLERANCE)


def test_checkpointing_keeps_far_less_than_saving_everything():
    plain = forward_state("llama", "lora", {"r": 8}, "bfloat16", checkpointing=False)
    checkpointed = forward_state("llama", "lora", {"r": 8}, "bfloat16", checkpointing=True)
    assert sum(checkpointed.held) < sum(plain.held) / 5


#: What a method computes, beyond the reference recipe: LoRA without dropout (no mask; in fp32 the linears
#: reading one tensor keep it once), DoRA's magnitude path, IA3's rescaling.
VARIANTS = (
    ("lora", {"r": 8, "dropout": 0.0}),
    ("dora", {"r": 8}),
    ("dora", {"r": 8, "dropout": 0.0}),
    ("ia3", {}),
)
VARIANT_IDS = ["lora-p0", "dora", "dora-p0", "ia3"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_without_dropout_keeps_no_mask(family, dtype):
    hp = {"r": 8, "dropout": 0.0}
    model = tm.build(family, dtype, "lora", **hp)
    measured = tm.saved_tensor_bytes(model, tm.batch(family, BATCH, SEQ))
    predicted = forward_state(family, "lora", hp, dtype, checkpointing=False).saved_for_backward
    assert predicted == pytest.approx(measured, rel=TOLERANCE)
    with_dropout = forward_state(family, "lora", {"r": 8}, dtype, checkpointing=False).saved_for_backward
    assert predicted < with_dropout


@pytest.mark.parametrize("method, hp", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_method_variants_match_the_bytes_alive_after_forward(family, method, hp):
    """Counted with the profiler: DoRA's detached weight-norm graph frees tensors during the forward pass,
    whose addresses the saved-tensor hooks would then see reused.

    IA3 on gpt2/BERT is checked within 10% only: its default targets share a name with another linear
    there (mlp.c_proj / attention c_proj, output.dense / intermediate.dense), which the name-based count
    cannot tell apart.
    """
    if method == "ia3" and family != "llama":
        tolerance = 0.10
    else:
        tolerance = TOLERANCE
    model = tm.build(family, "bfloat16", method, **hp)
    measured = tm.bytes_alive_after_forward(model, tm.batch(family, BATCH, SEQ))
    predicted = forward_state(family, method, hp, "bfloat16", checkpointing=False).alive
    assert predicted == pytest.approx(measured, rel=tolerance)


def test_ia3_backpropagates_and_checkpointing_lowers_its_peak():
    from advisor.estimate import EstimateRequest, estimate
    from advisor.knowledge_base import resolve_model
    from advisor.manager import get_method

    arch = resolve_model("llama-3.2-3b").architecture
    plugin = get_method("ia3")
    footprint = plugin.footprint(arch, plugin.hyperparameters({}))
    shape = memory.Shape(precision="bf16", batch=4, seq=2048, gradient_checkpointing=False, optimizer="adamw",
                         head="lm", num_labels=2)
    assert memory.forward_state(arch, footprint, shape).saved_for_backward > 0
    peaks = [estimate(EstimateRequest(architecture=arch, footprint=footprint, batch_size=4, seq_len=2048,
                                      gradient_checkpointing=ckpt)).memory.peak_gib for ckpt in (False, True)]
    assert peaks[1] < peaks[0]
