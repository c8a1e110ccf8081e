"""Properties of the memory model that must hold for any shape (hypothesis), and its multi-GPU rules."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.estimate import EstimateRequest, estimate
from advisor.knowledge_base import resolve_gpu, resolve_model
from advisor.manager import get_method

MODELS = ["gpt2", "qwen2.5-0.5b", "llama-3.2-1b", "mistral-7b", "qwen2.5-7b", "all-minilm-l6-v2"]
METHODS = {
    "full": {}, "freeze": {"trainable_layers": 2}, "lora": {}, "qlora": {},
    "prompt_tuning": {"num_virtual_tokens": 20}, "prefix": {"num_virtual_tokens": 20},
}


def request(model="llama-3.2-1b", method="lora", hp=None, **shape) -> EstimateRequest:
    plugin = get_method(method)
    arch = resolve_model(model).architecture
    values = {**METHODS.get(method, {}), **(hp or {})}
    return EstimateRequest(architecture=arch, footprint=plugin.footprint(arch, plugin.hyperparameters(values)),
                           **shape)


def peak(**kwargs) -> float:
    return estimate(request(**kwargs)).memory.peak_gib


configs = st.fixed_dictionaries({
    "model": st.sampled_from(MODELS),
    "method": st.sampled_from(sorted(METHODS)),
    "gradient_checkpointing": st.booleans(),
    "precision": st.sampled_from(["bf16", "mixed"]),
})


@settings(max_examples=60, deadline=None)
@given(configs, st.integers(1, 16), st.integers(16, 4096))
def test_peak_grows_with_batch_and_sequence(config, batch, seq):
    base = peak(**config, batch_size=batch, seq_len=seq)
    assert peak(**config, batch_size=batch + 1, seq_len=seq) >= base
    assert peak(**config, batch_size=batch, seq_len=seq + 64) >= base


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(MODELS), st.sampled_from(["lora", "qlora"]), st.integers(1, 256), st.booleans())
def test_peak_grows_with_lora_rank(model, method, rank, checkpointing):
    shape = dict(batch_size=4, seq_len=512, gradient_checkpointing=checkpointing)
    low = peak(model=model, method=method, hp={"r": rank}, **shape)
    assert peak(model=model, method=method, hp={"r": rank * 2}, **shape) >= low


@settings(max_examples=40, deadline=None)
@given(configs, st.integers(1, 8), st.integers(64, 2048))
def test_breakdown_sums_to_peak_and_checkpointing_never_costs_memory(config, batch, seq):
    config = {**config, "gradient_checkpointing": False}
    result = estimate(request(**config, batch_size=batch, seq_len=seq))
    assert sum(result.memory.breakdown.values()) == pytest.approx(result.memory.peak_gib, abs=0.01)
    if config["method"] != "freeze":
        # Under freeze, checkpointing makes the frozen layers backpropagate too (transformers'
        # enable_input_require_grads), which can cost a little at tiny batches: no claim there.
        checkpointed = peak(**{**config, "gradient_checkpointing": True}, batch_size=batch, seq_len=seq)
        assert checkpointed <= result.memory.peak_gib


def test_fits_compares_peak_plus_overhead_with_the_device():
    small = estimate(request(model="gpt2", method="lora", batch_size=1, seq_len=256, gpu=resolve_gpu("t4")))
    assert small.fits is True and small.device_memory_gib == resolve_gpu("t4").memory_gib
    big = estimate(request(model="llama-3.1-8b", method="full", batch_size=4, seq_len=2048, gpu=resolve_gpu("a10g")))
    assert big.fits is False
    assert big.memory.peak_gib + big.memory.overhead_gib > 22.06
    assert estimate(request(model="gpt2", method="lora")).fits is None
    override = estimate(request(model="gpt2", method="lora", gpu=resolve_gpu("t4"), device_memory_gib=0.1))
    assert override.fits is False and override.device_memory_gib == 0.1


def test_sharding_splits_states_per_device():
    shape = dict(model="llama-3.1-8b", method="full", batch_size=1, seq_len=1024, gradient_checkpointing=True)
    single = estimate(request(**shape)).memory
    ddp = estimate(request(**shape, num_gpus=8, sharding="ddp")).memory
    zero2 = estimate(request(**shape, num_gpus=8, sharding="zero2")).memory
    fsdp = estimate(request(**shape, num_gpus=8, sharding="fsdp")).memory
    zero3 = estimate(request(**shape, num_gpus=8, sharding="zero3")).memory
    assert ddp.peak_gib > single.peak_gib  # DDP's gradient buckets
    assert fsdp.peak_gib < zero3.peak_gib < zero2.peak_gib < single.peak_gib
    assert fsdp.breakdown["weights"] == pytest.approx(single.breakdown["weights"] / 8, rel=0.01)


def test_deepspeed_keeps_fp32_master_weights_and_states_fsdp_does_not():
    """bf16 full fine-tuning of 8.03B parameters on 8 GPUs: FSDP splits bf16 Adam states (4 bytes/param);
    ZeRO-3 splits fp32 master weights and fp32 states (4 + 8 bytes/param)."""
    shape = dict(model="llama-3.1-8b", method="full", batch_size=1, seq_len=1024, gradient_checkpointing=True,
                 num_gpus=8)
    params = estimate(request(**shape)).total_params
    fsdp = estimate(request(**shape, sharding="fsdp")).memory.breakdown["optimizer"]
    zero3 = estimate(request(**shape, sharding="zero3")).memory.breakdown["optimizer"]
    assert fsdp == pytest.approx(params * 4 / 8 / 2**30, rel=0.01)
    assert zero3 == pytest.approx(params * 12 / 8 / 2**30, rel=0.01)


def test_zero3_on_one_gpu_is_still_deepspeed():
    shape = dict(model="llama-3.2-1b", method="full", batch_size=1, seq_len=256)
    none = estimate(request(**shape)).memory.breakdown["optimizer"]
    zero3 = estimate(request(**shape, sharding="zero3")).memory.breakdown["optimizer"]
    assert zero3 == pytest.approx(none * 3, rel=0.01)  # master 4 + fp32 states 8, against bf16 states 4


def test_mixed_precision_copies_are_sharded_too():
    """A 70B model in mixed precision over 8 GPUs: FSDP gathers bf16 copies per unit, autocast caches none."""
    shape = dict(model="llama-3.1-70b", method="full", batch_size=1, seq_len=1024, gradient_checkpointing=True,
                 precision="mixed", num_gpus=8)
    fsdp = estimate(request(**shape, sharding="fsdp")).memory
    zero3 = estimate(request(**shape, sharding="zero3")).memory
    assert "autocast_copies" not in fsdp.breakdown
    assert zero3.breakdown.get("autocast_copies", 0) < 10
    assert fsdp.peak_gib < 160 and zero3.peak_gib < 160  # 70.55B x 16 bytes / 8 = 131 GiB of states


def test_eight_bit_and_paged_optimizers_shrink_the_states():
    shape = dict(model="llama-3.2-1b", method="full", batch_size=1, seq_len=256)
    adamw = estimate(request(**shape)).memory.peak_gib
    eight = estimate(request(**shape, optimizer="adamw_8bit")).memory.peak_gib
    paged = estimate(request(**shape, optimizer="paged_adamw_8bit")).memory.peak_gib
    assert paged < eight < adamw


def test_large_vocabularies_make_the_logits_dominate():
    breakdown = estimate(request(model="qwen2.5-0.5b", method="lora", batch_size=4, seq_len=2048,
                                 gradient_checkpointing=True)).memory.breakdown
    assert breakdown["logits_loss"] == max(breakdown.values())


def test_qlora_weights_are_nf4_plus_fp32_upcast():
    result = estimate(request(model="llama-3.1-8b", method="qlora", batch_size=1, seq_len=512))
    breakdown = result.memory.breakdown
    assert breakdown["weights"] < result.total_params * 0.6 / 2**30  # ~0.52 byte per quantised weight
    assert breakdown["weights_fp32_upcast"] == pytest.approx(2 * 128256 * 4096 * 4 / 2**30, rel=0.01)


def test_time_is_hours_and_cost_for_the_tokens_given():
    result = estimate(request(model="llama-3.2-1b", method="lora", batch_size=8, seq_len=1024,
                              gpu=resolve_gpu("a100-80gb"), train_tokens=36_000_000, price_per_hour=2.0))
    assert result.time.hours == pytest.approx(36_000_000 / result.time.tokens_per_s / 3600, rel=1e-3)
    assert result.time.cost == pytest.approx(result.time.hours * 2.0, rel=1e-2)
    small_batch = estimate(request(model="llama-3.2-1b", method="lora", batch_size=1, seq_len=256,
                                   gpu=resolve_gpu("a100-80gb")))
    assert small_batch.time.tokens_per_s < result.time.tokens_per_s / 2  # batch 1 is launch-bound
