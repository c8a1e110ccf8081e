"""The "what fits" search: the cheapest compromise that fits, in a fixed order, or None."""

from advisor.estimate import EstimateRequest, estimate
from advisor.estimate.search import best_fit
from advisor.knowledge_base import resolve_gpu, resolve_model
from advisor.manager import get_method


def request(model: str, method: str, gpu: str, **shape) -> EstimateRequest:
    plugin = get_method(method)
    arch = resolve_model(model).architecture
    return EstimateRequest(architecture=arch, footprint=plugin.footprint(arch, plugin.hyperparameters({})),
                           gpu=resolve_gpu(gpu), **shape)


def test_a_fitting_request_comes_back_unchanged():
    asked = request("gpt2", "lora", "h100", batch_size=4, seq_len=512, fused_cross_entropy=True)
    fit = best_fit(asked)
    assert fit.request == asked and fit.changes == [] and fit.estimate.fits


def test_a_fused_loss_is_on_where_it_saves_over_a_fifth_of_the_peak_even_when_the_step_fits():
    asked = request("gpt2", "lora", "h100", batch_size=4, seq_len=512)
    fit = best_fit(asked)
    assert estimate(asked).fits and fit.request == asked.model_copy(update={"fused_cross_entropy": True})
    assert fit.estimate.memory.peak_gib < 0.8 * estimate(asked).memory.peak_gib
    assert fit.changes == ["fused cross-entropy on: the logits are never held in full (no quality cost)"]


def test_a_fused_loss_saving_less_is_on_only_where_it_makes_the_step_fit():
    asked = request("llama-3.1-8b", "full", "h100", batch_size=1, seq_len=512)
    plain, fused = estimate(asked), estimate(asked.model_copy(update={"fused_cross_entropy": True}))
    assert fused.memory.peak_gib > 0.8 * plain.memory.peak_gib
    roomy = best_fit(asked.model_copy(update={"device_memory_gib": 1000.0}))
    assert not roomy.request.fused_cross_entropy and roomy.changes == []
    between = (plain.memory.peak_gib + plain.memory.overhead_gib + fused.memory.peak_gib + fused.memory.overhead_gib) / 2
    tight = best_fit(asked.model_copy(update={"device_memory_gib": between}))
    assert tight.request.fused_cross_entropy and not tight.request.gradient_checkpointing
    assert any("fused cross-entropy" in change for change in tight.changes)


def test_checkpointing_comes_before_a_smaller_micro_batch():
    asked = request("llama-3.2-1b", "lora", "l4", batch_size=8, seq_len=1024)
    assert estimate(asked).fits is False
    fit = best_fit(asked)
    assert fit.estimate.fits and fit.request.gradient_checkpointing
    assert "gradient checkpointing" in next(change for change in fit.changes if "fused" not in change)


def test_a_smaller_micro_batch_keeps_the_effective_batch():
    fit = best_fit(request("llama-3.1-8b", "lora", "a10g", batch_size=8, seq_len=2048), effective_batch=16)
    assert fit.estimate.fits
    assert fit.request.batch_size < 8
    assert fit.request.batch_size * fit.gradient_accumulation_steps >= 16
    assert any("gradient accumulation" in change for change in fit.changes)


def test_sharding_before_shorter_sequences_on_several_gpus():
    fit = best_fit(request("llama-3.1-8b", "full", "a10g", batch_size=1, seq_len=1024, num_gpus=8))
    assert fit.request.sharding in ("fsdp", "zero3") and fit.request.seq_len == 1024


def test_shorter_sequences_are_named_a_quality_trade_off():
    fit = best_fit(request("qwen2.5-1.5b", "lora", "t4", batch_size=1, seq_len=65536))
    assert fit is not None and fit.request.seq_len < 65536
    assert "quality trade-off" in fit.changes[-1]


def test_nothing_fits_gives_none():
    assert best_fit(request("llama-3.1-70b", "full", "t4", batch_size=1, seq_len=512)) is None


def test_prefix_tuning_is_never_given_checkpointing():
    fit = best_fit(request("llama-3.2-3b", "prefix", "t4", batch_size=8, seq_len=1024))
    assert fit is not None and not fit.request.gradient_checkpointing and fit.request.batch_size < 8


def test_search_shards_a_quantized_base_with_fsdp_only_nor_uses_8bit_optimizers_on_cpu():
    """FSDP-QLoRA (bnb_4bit_quant_storage in the compute dtype) shards a 4-bit base; ZeRO is never proposed."""
    from advisor.estimate import EstimateRequest
    from advisor.estimate.search import _candidates
    from advisor.knowledge_base import resolve_gpu, resolve_model
    from advisor.manager import get_method

    arch = resolve_model("llama-3.1-70b").architecture
    qlora = get_method("qlora")
    request = EstimateRequest(architecture=arch, footprint=qlora.footprint(arch, qlora.hyperparameters()),
                              batch_size=4, seq_len=1024, num_gpus=4, gpu=resolve_gpu("a10g"))
    shardings = {candidate.sharding for candidate, _ in _candidates(request, 16)}
    assert "fsdp" in shardings and not shardings & {"zero2", "zero3"}
    lora = get_method("lora")
    on_cpu = request.model_copy(update={"footprint": lora.footprint(arch, lora.hyperparameters()),
                                        "gpu": resolve_gpu("cpu"), "num_gpus": 1, "sharding": "none"})
    assert all(candidate.optimizer == "adamw" for candidate, _ in _candidates(on_cpu, 16))
