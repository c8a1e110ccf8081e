"""Hybrid sharding, CPU offload and several nodes: per-device memory, time and the estimate's config."""

import pytest

from advisor.estimate import EstimateRequest, estimate
from advisor.estimate.sharding import gathered_unit_bytes
from advisor.estimate.throughput import INTER_NODE_BYTES_PER_S
from advisor.knowledge_base import resolve_gpu, resolve_model
from advisor.manager import get_method

FULL_8B = dict(model="llama-3.1-8b", method="full", batch_size=1, seq_len=1024, gradient_checkpointing=True)


def request(model: str, method: str, **shape) -> EstimateRequest:
    plugin = get_method(method)
    arch = resolve_model(model).architecture
    return EstimateRequest(architecture=arch, footprint=plugin.footprint(arch, plugin.hyperparameters({})), **shape)


def memory(**shape):
    return estimate(request(**{**FULL_8B, **shape})).memory


def test_hybrid_on_one_node_is_fsdp():
    assert memory(num_gpus=8, sharding="hybrid") == memory(num_gpus=8, sharding="fsdp")


def test_hybrid_lies_between_full_sharding_and_ddp_on_several_nodes():
    layout = dict(num_gpus=8, num_nodes=4)
    ddp, hybrid, fsdp = (memory(**layout, sharding=s) for s in ("ddp", "hybrid", "fsdp"))
    assert fsdp.peak_gib < hybrid.peak_gib < ddp.peak_gib
    # hybrid splits over the 8 devices of a node, fsdp over all 32
    assert hybrid.breakdown["weights"] == pytest.approx(memory().breakdown["weights"] / 8, rel=1e-3)
    assert fsdp.breakdown["weights"] == pytest.approx(memory().breakdown["weights"] / 32, rel=1e-3)
    assert hybrid == memory(num_gpus=8, sharding="fsdp")  # one node's worth of sharding


def test_full_sharding_counts_every_device_of_every_node():
    for sharding in ("fsdp", "zero2", "zero3"):
        assert memory(num_gpus=4, num_nodes=2, sharding=sharding) == memory(num_gpus=8, sharding=sharding)


def test_optimizer_offload_takes_the_states_and_deepspeeds_master_weights_off_the_device():
    on_device = memory(num_gpus=8, sharding="zero3")
    offloaded = memory(num_gpus=8, sharding="zero3", offload="optimizer")
    assert on_device.breakdown["optimizer"] > 0 and "optimizer" not in offloaded.breakdown
    assert offloaded.breakdown["weights"] == on_device.breakdown["weights"]
    config = estimate(request(**FULL_8B, num_gpus=8, sharding="zero3", offload="optimizer")).config
    params = resolve_model("llama-3.1-8b").architecture.total_params()
    # bf16 trained through fp32 master weights (4 bytes) and fp32 Adam states (8): 12 bytes each, on the host
    assert config["offloaded_gib_per_node"] == pytest.approx(params * 12 / 2**30, rel=1e-3)


def test_parameter_offload_leaves_only_the_gathered_units():
    on_device = memory(num_gpus=8, sharding="fsdp")
    offloaded = memory(num_gpus=8, sharding="fsdp", offload="parameters")
    assert not {"weights", "optimizer", "gradients"} & set(offloaded.breakdown)
    assert offloaded.breakdown["communication_buffers"] == on_device.breakdown["communication_buffers"]
    assert offloaded.peak_gib < on_device.peak_gib


@pytest.mark.parametrize("sharding, offload", [("ddp", "optimizer"), ("fsdp", "optimizer"), ("zero2", "parameters"),
                                               ("none", "parameters")])
def test_an_engine_without_that_offload_is_refused(sharding, offload):
    with pytest.raises(ValueError, match="offload"):
        memory(num_gpus=8, sharding=sharding, offload=offload)


def test_a_4bit_base_under_fsdp_splits_its_4bit_bytes():
    """FSDP-QLoRA: the NF4 weights (stored in the compute dtype's bytes) are split like any parameter."""
    shape = dict(model="llama-3.1-70b", method="qlora", batch_size=1, seq_len=1024, gradient_checkpointing=True)
    single = estimate(request(**shape)).memory.breakdown["weights"]
    sharded = estimate(request(**shape, num_gpus=4, sharding="fsdp")).memory
    assert sharded.breakdown["weights"] == pytest.approx(single / 4, rel=1e-3)
    assert sharded.peak_gib < estimate(request(**shape)).memory.peak_gib
    arch, plugin = resolve_model("llama-3.1-70b").architecture, get_method("qlora")
    qlora = plugin.footprint(arch, plugin.hyperparameters({}))
    layer_4bit, _ = gathered_unit_bytes(arch, qlora, "fsdp", 2, autocast=False)
    assert layer_4bit < arch.layer_params() * 2 / 3  # gathered as 4-bit linears (and 16-bit norms), not 16-bit


def timed(**shape):
    return estimate(request(**{**FULL_8B, "gpu": resolve_gpu("h100"), "train_tokens": 10**8, **shape}))


def test_hybrid_is_faster_than_full_sharding_across_nodes_and_the_same_on_one():
    hybrid, fsdp = timed(num_gpus=8, num_nodes=2, sharding="hybrid"), timed(num_gpus=8, num_nodes=2, sharding="fsdp")
    assert hybrid.time.hours < fsdp.time.hours
    assert timed(num_gpus=8, sharding="hybrid").time == timed(num_gpus=8, sharding="fsdp").time


def test_time_and_cost_count_every_device_of_every_node():
    step = dict(batch_size=8, seq_len=2048, gradient_accumulation_steps=4, sharding="hybrid", price_per_hour=2.0)
    one, two = timed(num_gpus=8, **step), timed(num_gpus=8, num_nodes=2, **step)
    assert one.time.tokens_per_s < two.time.tokens_per_s <= 2 * one.time.tokens_per_s
    assert two.time.cost == pytest.approx(two.time.hours * 16 * 2.0, rel=1e-3)
    assert two.time.hours_band[0] < two.time.hours < two.time.hours_band[1]


def test_gradient_sync_across_nodes_can_dominate_a_small_step():
    """Batch 1 x 1024 tokens per device: all-reducing 8B parameters' gradients over the assumed 100 Gb/s per node
    takes longer than the step's compute, so a second node slows each device down."""
    one, two = timed(num_gpus=8, sharding="hybrid"), timed(num_gpus=8, num_nodes=2, sharding="hybrid")
    assert two.time.tokens_per_s / 16 < one.time.tokens_per_s / 8


def test_fsdp_accumulates_whole_gradients_between_micro_batches():
    """The Trainer's no_sync (FSDP2 set_requires_gradient_sync(False)) keeps unsharded gradients; ZeRO-3 reduces."""
    whole = memory().breakdown["optimizer"] / 2  # bf16 AdamW: two states of the gradients' size
    fsdp = memory(num_gpus=8, sharding="fsdp", gradient_accumulation_steps=4)
    zero3 = memory(num_gpus=8, sharding="zero3", gradient_accumulation_steps=4)
    assert fsdp.breakdown["gradients"] == pytest.approx(whole, rel=1e-3)
    assert zero3.breakdown["gradients"] < whole / 4


def test_offload_is_slower():
    assert timed(num_gpus=8, sharding="fsdp", offload="parameters").time.hours > timed(num_gpus=8,
                                                                                      sharding="fsdp").time.hours


def test_config_reports_the_layout_and_the_assumed_links():
    config = timed(num_gpus=8, num_nodes=2, sharding="hybrid", offload="parameters").config
    assert (config["num_gpus"], config["num_nodes"], config["sharding"], config["offload"]) == (8, 2, "hybrid",
                                                                                                  "parameters")
    assert config["inter_node_gb_per_s_assumed"] == INTER_NODE_BYTES_PER_S / 1e9
    assert {"intra_node_gb_per_s_assumed", "host_link_gb_per_s_assumed", "offloaded_gib_per_node"} <= set(config)
    assert "inter_node_gb_per_s_assumed" not in timed(num_gpus=8, sharding="fsdp").config


def searched(model: str, method: str, gpu: str, **shape):
    from advisor.estimate.search import best_fit

    return best_fit(request(model, method, gpu=resolve_gpu(gpu), batch_size=1, seq_len=1024, **shape))


def test_search_tries_hybrid_first_on_several_nodes_and_never_on_one():
    from advisor.estimate.search import _candidates

    asked = request("llama-3.1-70b", "full", gpu=resolve_gpu("h100"), num_gpus=8, num_nodes=2, sharding="ddp")
    order = [(candidate.sharding, candidate.offload) for candidate, _ in _candidates(asked, 16)]
    shardings = [sharding for sharding, _ in order if sharding != "ddp"]
    assert shardings[0] == "hybrid" and shardings.index("fsdp") < shardings.index("zero3")
    # hybrid's offload after full sharding (best_fit then weighs the two by speed), before cutting sequences
    assert order.index(("fsdp", "none")) < order.index(("hybrid", "parameters"))
    cut = next(index for index, (candidate, _) in enumerate(_candidates(asked, 16))
               if candidate.seq_len < asked.seq_len)
    assert order.index(("hybrid", "parameters")) < cut
    one_node = asked.model_copy(update={"num_nodes": 1})
    assert "hybrid" not in {candidate.sharding for candidate, _ in _candidates(one_node, 16)}


def test_offload_comes_after_sharding_and_before_cutting_sequences():
    fit = searched("llama-3.1-70b", "lora", "rtx4090", num_gpus=4, sharding="ddp")
    assert fit.request.offload != "none" and fit.request.seq_len == 1024
    assert any("CPU memory" in change for change in fit.changes)


def test_offload_is_bounded_by_the_assumed_host_memory():
    """70B full fine-tuning on 2 x 24 GB would need about a terabyte of CPU memory: not offered."""
    assert searched("llama-3.1-70b", "full", "rtx4090", num_gpus=2, sharding="ddp") is None


def test_needs_x_gib_comes_from_a_configuration_whose_offload_the_host_holds():
    """Nothing fits, so the plan says what the smallest configuration needs: never one whose offload needs a
    terabyte of CPU memory, which would read as 'needs 11 GiB of 24'."""
    from advisor.estimate.search import smallest_tried

    asked = request("llama-3.1-70b", "full", gpu=resolve_gpu("rtx4090"), batch_size=1, seq_len=1024, num_gpus=2,
                    sharding="ddp")
    smallest = smallest_tried(asked)
    assert smallest.config["offload"] == "none" and smallest.fits is False
