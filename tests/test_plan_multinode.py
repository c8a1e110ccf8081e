"""Plans for several nodes and sharded 4-bit bases: which sharding, why, and how the plan says it."""

import json

import pytest

from advisor.cli.main import main
from advisor.facts import derive_facts
from advisor.models import Plan, Profile
from advisor.planner import make_plan

FULL_70B_TWO_NODES = dict(examples=5000, model="llama-3.1-70b", gpu="h100", num_gpus=8, num_nodes=2, method="full")
QLORA_70B_FOUR_4090 = dict(examples=5000, model="llama-3.1-70b", gpu="rtx4090", num_gpus=4, method="qlora")


@pytest.fixture(scope="module")
def two_nodes() -> Plan:
    return make_plan(Profile(**FULL_70B_TWO_NODES))


def rationale(plan: Plan) -> dict[str, str]:
    return {entry.rule: f"{entry.message} {entry.source}" for entry in plan.rationale}


def test_70b_full_fine_tuning_on_two_nodes_weighs_full_sharding_against_hybrid_with_offload(two_nodes):
    """Hybrid sharding alone does not fit; full sharding and hybrid with its shards offloaded both do. The faster
    by the estimate is planned, and the plan says the other with both speeds, since the network decides."""
    assert two_nodes.recommendation.method == "full" and two_nodes.estimate.fits
    config = two_nodes.estimate.config
    other = config["layout_alternative"]
    assert {config["sharding"], other["sharding"]} == {"fsdp", "hybrid"}
    assert (config["num_gpus"], config["num_nodes"]) == (8, 2)
    assert (config["offload"] != "none") == (config["sharding"] == "hybrid")
    assert two_nodes.estimate.time.tokens_per_s == other["chosen_tokens_per_s"] > other["tokens_per_s"]
    why = rationale(two_nodes)["memory.sharding-trade-off"]
    assert "assumed 100 Gb/s between nodes" in why and "400 Gb/s" in why and "arxiv.org/abs/2304.11277" in why
    assert f"~{other['tokens_per_s']:,.0f} tokens/s" in why
    assert f"set estimate.config.sharding to '{other['sharding']}'" in why


def test_8b_full_fine_tuning_on_two_nodes_of_eight_h100_is_hybrid_sharded():
    plan = make_plan(Profile(**{**FULL_70B_TWO_NODES, "model": "llama-3.1-8b"}))
    config = plan.estimate.config
    assert (config["sharding"], config["num_gpus"], config["num_nodes"], config["offload"]) == ("hybrid", 8, 2, "none")
    why = rationale(plan)
    assert "memory.sharding" not in why and "memory.sharding-trade-off" not in why
    assert "2 nodes x 8 GPUs" in why["memory.hybrid-sharding"]
    assert "only gradients cross the slower network" in why["memory.hybrid-sharding"]
    assert "arxiv.org/abs/2304.11277" in why["memory.hybrid-sharding"]


def test_the_effective_batch_is_divided_over_every_device_of_every_node(two_nodes):
    hp = two_nodes.training.hyperparameters
    assert hp.batch_size * hp.gradient_accumulation_steps * 16 == 16


def test_a_70b_qlora_fits_four_24gb_cards_with_fsdp_qlora():
    plan = make_plan(Profile(**QLORA_70B_FOUR_4090))
    assert plan.recommendation.method == "qlora" and plan.estimate.fits
    assert plan.estimate.config["sharding"] == "fsdp"
    why = rationale(plan)
    assert "bnb_4bit_quant_storage" in why["memory.fsdp-qlora"] and "huggingface.co/docs/peft" in why["memory.fsdp-qlora"]


def test_a_70b_qlora_does_not_fit_one_24gb_card():
    plan = make_plan(Profile(**{**QLORA_70B_FOUR_4090, "num_gpus": 1}))
    assert plan.recommendation.method is None and "memory.fsdp-qlora" not in rationale(plan)


def test_one_node_never_gets_hybrid_sharding():
    plan = make_plan(Profile(**{**FULL_70B_TWO_NODES, "num_nodes": 1}))
    assert plan.estimate.config["sharding"] != "hybrid" and "memory.hybrid-sharding" not in rationale(plan)


def test_facts_carry_the_nodes():
    facts = derive_facts(Profile(**FULL_70B_TWO_NODES))
    assert (facts.num_nodes, facts.hardware) == (2, "2 nodes x 8 GPUs")


def test_human_plan_names_the_nodes_and_the_sharding(capsys):
    code = main(["plan", "--examples", "5000", "--model", "llama-3.1-70b", "--gpu", "h100", "--num-gpus", "8",
                 "--num-nodes", "2", "--method", "full"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Devices: 2 nodes x 8 GPUs, FSDP full sharding" in " ".join(out.split())


def test_estimate_cli_takes_nodes_and_offload(capsys):
    code = main(["estimate", "--model", "llama-3.1-8b", "--method", "full", "--num-gpus", "8", "--num-nodes", "2",
                 "--sharding", "hybrid", "--offload", "parameters", "--json"])
    config = json.loads(capsys.readouterr().out)["config"]
    assert code == 0
    assert (config["num_nodes"], config["sharding"], config["offload"]) == (2, "hybrid", "parameters")


@pytest.mark.parametrize("argv, says", [
    (["--num-gpus", "8", "--offload", "optimizer"], "error: --offload optimizer needs --sharding zero2 or zero3, not ddp"),
    (["--num-gpus", "8", "--sharding", "fsdp", "--offload", "optimizer"], "not fsdp"),
    (["--num-nodes", "0"], "error: argument --num-nodes"),
])
def test_estimate_cli_refuses_an_offload_the_engine_lacks_in_one_line(capsys, argv, says):
    code = main(["estimate", "--model", "llama-3.1-8b", "--method", "full", *argv])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_summary_names_every_node_and_device(two_nodes):
    assert "per device of 79.2 GiB on 2 nodes x 8 h100." in two_nodes.recommendation.summary


def test_one_device_summary_names_the_gpu_alone():
    plan = make_plan(Profile(examples=5000, model="llama-3.2-1b", gpu="h100", method="lora"))
    assert plan.recommendation.summary.endswith("GiB per device of 79.2 GiB on h100.")


@pytest.fixture(scope="module")
def nothing_fits_on_two_nodes() -> Plan:
    return make_plan(Profile(**{**FULL_70B_TWO_NODES, "gpu": "rtx4090", "num_gpus": 2}))


def test_nothing_fits_names_the_nodes_and_the_hardware_that_would(nothing_fits_on_two_nodes):
    summary = nothing_fits_on_two_nodes.recommendation.summary
    # --method full: the methods that do fit these nodes are named (tests/test_review_forced.py)
    assert summary.startswith("--method full does not fit 23.5 GiB per device on 2 nodes x 2 rtx4090: "
                              "full on llama-3.1-70b")
    bigger = nothing_fits_on_two_nodes.alternatives[0]
    assert bigger.config["num_nodes"] == 1 and bigger.config["offload"] == "none" and bigger.config["seq_len"] == 1024
    assert f"The smallest hardware that fits: full on {bigger.config['num_gpus']} {bigger.config['gpu']} (" in summary


def test_alternatives_carry_the_offload_and_the_nodes_they_fit_with(nothing_fits_on_two_nodes):
    smaller = next(alt for alt in nothing_fits_on_two_nodes.alternatives if "model" in alt.config)
    assert smaller.config["num_nodes"] == 2 and smaller.config["offload"] == "parameters"  # your hardware: offloaded
    fitting = [alt for alt in nothing_fits_on_two_nodes.alternatives if alt.fits and "gpu" not in alt.config]
    assert fitting and all(alt.config["num_nodes"] == 2 and "offload" in alt.config for alt in fitting)


def test_the_default_gpu_assumption_names_the_nodes():
    plan = make_plan(Profile(examples=5000, model="llama-3.2-1b", num_gpus=8, num_nodes=2, method="lora"))
    assert any(line.startswith("No --gpu given: planned for 2 nodes x 8 a10g (") for line in plan.assumptions)


def test_the_memory_rules_name_the_nodes(nothing_fits_on_two_nodes):
    assert "24 GiB per device (2 nodes x 2 GPUs)" in rationale(nothing_fits_on_two_nodes)["memory.forced-misfit"]


def test_the_full_fine_tuning_criteria_name_the_nodes():
    plan = make_plan(Profile(examples=200_000, quality="high", model="llama-3.1-8b", gpu="h100", num_gpus=8,
                             num_nodes=2))
    assert "80GB-class devices (2 nodes x 8 GPUs, NVIDIA H100" in rationale(plan)["method.full-criteria"]
