"""The review's search defects: the layout on several nodes and its speed, the effective batch it gives, what the
compromise wording says against the alternatives table, and the smallest hardware when nothing fits."""

import pytest

from advisor.cli.main import main
from advisor.estimate import EstimateRequest, estimate
from advisor.estimate import throughput
from advisor.estimate.estimator import tokens_per_second
from advisor.estimate.search import _candidates, best_fit, smallest_tried
from advisor.knowledge_base import resolve_gpu, resolve_model, tasks
from advisor.manager import get_method
from advisor.models import Plan, Profile
from advisor.planner import make_plan
from advisor import rules as rulebook

FOUR_NODES = dict(examples=250_000, quality="high", model="llama-3.1-70b", gpu="h100", num_gpus=8, num_nodes=4)
LONG_GENERATION = dict(task="generation", seq_len=32768, model="llama-3.1-8b", gpu="rtx4090", num_gpus=4)
CHAT_ON_T4 = dict(task="chat", examples=6000, model="llama-3.2-3b", gpu="t4")
#: LoRA fits only with its sequences halved; QLoRA keeps all 8192 tokens.
LONG_CHAT_ON_L4 = dict(task="chat", examples=6000, model="llama-3.1-8b", gpu="l4", seq_len=8192)
NO_GPU_70B = dict(examples=5000, model="llama-3.3-70b")


def request(model: str, method: str, **shape) -> EstimateRequest:
    plugin = get_method(method)
    arch = resolve_model(model).architecture
    return EstimateRequest(architecture=arch, footprint=plugin.footprint(arch, plugin.hyperparameters({})), **shape)


def full_70b(**shape) -> EstimateRequest:
    shape = {"gradient_checkpointing": True, **shape}
    return request("llama-3.1-70b", "full", gpu=resolve_gpu("h100"), precision="mixed", batch_size=1, seq_len=1024,
                   num_gpus=8, num_nodes=4, **shape)


def rationale(plan: Plan) -> dict[str, str]:
    return {entry.rule: entry.message for entry in plan.rationale}


@pytest.fixture(scope="module")
def four_nodes() -> Plan:
    return make_plan(Profile(**FOUR_NODES))


# -- #7: the links' time -------------------------------------------------------------------------------------------
def test_a_ring_over_every_device_sends_each_devices_bytes_once_through_its_nodes_network():
    """Full sharding, batch 1: the step waits on the links. Each device gathers the bf16 model for the forward and
    the backward and reduce-scatters bf16 gradients, (W-1)/W of each; those bytes cross its node's network once
    (not once per device of the node)."""
    fsdp = full_70b(sharding="fsdp")
    params, world = fsdp.architecture.total_params(), 32
    per_device = 3 * 2 * params * (world - 1) / world
    expected = 1024 / (per_device / throughput.INTER_NODE_BYTES_PER_S) * world
    assert estimate(fsdp).time.tokens_per_s == pytest.approx(expected, rel=0.05)
    assert tokens_per_second(fsdp, 4 * throughput.INTER_NODE_BYTES_PER_S) == pytest.approx(4 * expected, rel=0.05)


def test_parameter_offload_times_the_optimizer_step_on_the_cpu(monkeypatch):
    hybrid = full_70b(sharding="hybrid", offload="parameters")
    assumed = estimate(hybrid)
    assert assumed.config["host_memory_gb_per_s_assumed"] == throughput.HOST_MEMORY_BYTES_PER_S / 1e9
    monkeypatch.setattr(throughput, "HOST_MEMORY_BYTES_PER_S", throughput.HOST_MEMORY_BYTES_PER_S * 1000)
    assert estimate(hybrid).time.tokens_per_s > 1.2 * assumed.time.tokens_per_s


# -- #7: the search weighs the two layouts by speed --------------------------------------------------------------------
def test_four_nodes_plan_full_sharding_without_offload_and_state_the_hybrid_offload_with_its_numbers(four_nodes):
    config = four_nodes.estimate.config
    assert (config["sharding"], config["offload"]) == ("fsdp", "none") and four_nodes.estimate.fits
    assert "offloaded_gib_per_node" not in config
    other = config["layout_alternative"]
    assert (other["sharding"], other["offload"]) == ("hybrid", "parameters") and other["offloaded_gib_per_node"] > 500
    assert four_nodes.estimate.time.tokens_per_s == other["chosen_tokens_per_s"] > other["tokens_per_s"]
    assert other["chosen_tokens_per_s_fast"] > other["tokens_per_s_fast"]
    why = rationale(four_nodes)["memory.sharding-trade-off"]
    assert "assumed 100 Gb/s between nodes" in why and "At 400 Gb/s" in why
    for speed in ("chosen_tokens_per_s", "tokens_per_s", "chosen_tokens_per_s_fast", "tokens_per_s_fast"):
        assert f"~{other[speed]:,.0f} tokens/s" in why or f"~{other[speed]:,.0f} and" in why
    assert f"{other['offloaded_gib_per_node']:,.0f} GiB per node" in why
    assert why in four_nodes.warnings


def test_the_human_plan_says_the_network_assumption_and_the_other_layout(capsys):
    argv = ["plan", *(f"--{key.replace('_', '-')}={value}" for key, value in FOUR_NODES.items())]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Devices: 4 nodes x 8 GPUs, FSDP full sharding" in out
    assert "assumed 100 Gb/s between nodes" in out and "with parameters, gradients and optimizer states in CPU" in out


def test_on_a_slower_network_the_hybrid_offload_is_planned_and_full_sharding_stated(monkeypatch):
    monkeypatch.setattr(throughput, "INTER_NODE_BYTES_PER_S", 10e9 / 8)
    fit = best_fit(full_70b(sharding="ddp", gradient_checkpointing=False), effective_batch=1)
    assert (fit.request.sharding, fit.request.offload) == ("hybrid", "parameters")
    assert fit.layout_alternative.sharding == "fsdp" and fit.layout_alternative.offload == "none"
    assert fit.layout_alternative.tokens_per_s < fit.estimate.time.tokens_per_s
    assert any("CPU memory" in change for change in fit.changes) and any("hybrid" in change for change in fit.changes)


def test_one_node_weighs_no_layouts():
    fit = best_fit(full_70b(sharding="ddp").model_copy(update={"num_nodes": 1}), effective_batch=2)
    assert fit.layout_alternative is None and "layout_alternative" not in fit.estimate.config


# -- #7: the effective batch as it comes out --------------------------------------------------------------------------
def test_the_effective_batch_rule_says_32_when_32_devices_take_one_sequence_each(four_nodes):
    hp = four_nodes.training.hyperparameters
    assert hp.batch_size * hp.gradient_accumulation_steps * 32 == 32
    said = rationale(four_nodes)["training.effective-batch"]
    assert said.startswith("Effective batch 32 over all devices (micro-batch 1 x 1 accumulation step x 32 devices")
    assert "The rules ask 16, but each of the 32 devices takes at least one sequence per step." in said


def test_the_effective_batch_rule_keeps_the_rules_number_on_one_device():
    said = rationale(make_plan(Profile(**CHAT_ON_T4)))["training.effective-batch"]
    assert said.startswith("Effective batch 16 over all devices (micro-batch ") and "The rules ask" not in said


# -- #8: the wording against the alternatives table -------------------------------------------------------------------
def alternatives_agree_with_the_plan(plan: Plan) -> None:
    """Every fitting alternative says the sequence cut it fits with, and a rule it cites for the ranking selects the
    recommended method and not the alternative."""
    asked = plan.profile.seq_len or tasks()[plan.profile.task].seq_len
    chosen = get_method(plan.recommendation.method)
    for row in plan.alternatives:
        if not row.fits or "gpu" in row.config or "model" in row.config:
            continue
        cut = row.config["seq_len"] < asked
        assert (f"cut to {row.config['seq_len']} tokens" in row.why_not) == cut, row
        if "ranks first (method." in row.why_not:
            rule_id = row.why_not.rsplit("(", 1)[1].rstrip(")")
            select = rulebook.rule(rule_id).select
            assert select.matches(chosen) and not select.matches(get_method(row.method)), row


@pytest.fixture(scope="module")
def long_generation() -> Plan:
    return make_plan(Profile(**LONG_GENERATION))


def test_a_cut_names_the_methods_that_keep_the_length_and_why_the_chosen_one_ranks_first(long_generation):
    assert long_generation.recommendation.method == "lora"
    assert long_generation.training.hyperparameters.seq_len < 32768
    keepers = [row.method for row in long_generation.alternatives if row.fits and row.config.get("seq_len") == 32768]
    said = rationale(long_generation)["memory.shorter-sequences"]
    assert keepers and "no method keeps" not in said.lower() and "No other method" not in said
    assert all(name in said for name in keepers) and "(method.lora-default)" in said
    assert said.split("pass --method ", 1)[1].split()[0] in keepers
    alternatives_agree_with_the_plan(long_generation)


def test_a_method_passed_over_for_length_says_so_not_that_it_ranks_below():
    plan = make_plan(Profile(**LONG_CHAT_ON_L4))
    alternatives_agree_with_the_plan(plan)
    chosen = plan.recommendation.method
    assert chosen == "qlora" and any("only with sequences cut" in row.why_not for row in plan.alternatives)
    for row in plan.alternatives:
        if row.fits and "only with sequences cut" in row.why_not:
            assert f"{chosen} keeps" in row.why_not and "ranks first" not in row.why_not
    fallback = rationale(plan).get("memory.quantized-fallback", "")
    lora = next(row for row in plan.alternatives if row.method == "lora")
    if lora.fits:  # the preferred method fits only cut: the fallback must not say it does not fit
        assert "does not fit" not in fallback and f"cut to {lora.config['seq_len']} tokens" in fallback


# -- #9: the smallest hardware ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def no_gpu_70b() -> Plan:
    return make_plan(Profile(**NO_GPU_70B))


def test_the_smallest_hardware_fits_the_whole_length_without_offload_and_says_its_numbers(no_gpu_70b):
    assert no_gpu_70b.recommendation.method is None
    bigger = no_gpu_70b.alternatives[0]
    assert bigger.why_not.startswith("needs other hardware: fits on ")
    assert bigger.config["seq_len"] == 1024 and bigger.config["offload"] == "none"
    assert "at all 1024 tokens" in bigger.why_not and "GiB per device, with " in bigger.why_not
    summary = no_gpu_70b.recommendation.summary
    assert f"The smallest hardware that fits: {bigger.method} on {bigger.config['num_gpus']} {bigger.config['gpu']} (" \
        in summary and bigger.why_not.removeprefix("needs other hardware: fits on ") in summary


def test_the_smallest_on_one_device_lists_only_what_one_device_tried(no_gpu_70b):
    summary = no_gpu_70b.recommendation.summary
    smallest = summary.split("even at its smallest (", 1)[1].split(")", 1)[0]
    assert "sharding" not in smallest and "CPU memory" not in smallest and "sequences of 128 tokens" in smallest
    qlora = next(row for row in no_gpu_70b.alternatives if row.method == "qlora" and not row.fits)
    assert "sharding" not in qlora.why_not and "every memory compromise" not in qlora.why_not


def test_one_device_is_never_offered_offload():
    one = request("llama-3.3-70b", "qlora", gpu=resolve_gpu("a10g"), batch_size=1, seq_len=1024)
    assert best_fit(one) is None
    assert smallest_tried(one).config["offload"] == "none"
    assert all(candidate.offload == "none" for candidate, _ in _candidates(one, 16))
    two = one.model_copy(update={"num_gpus": 2, "sharding": "ddp"})
    assert any(candidate.offload != "none" for candidate, _ in _candidates(two, 16))
