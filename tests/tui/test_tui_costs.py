"""The recommendation's costs text names the devices of a plan on several of them, as `advisor plan` does."""

from advisor.models import Profile
from advisor.tui.screens.recommendation import costs

from .driver import handmade_plan


def test_a_multi_node_plan_names_its_nodes_sharding_and_offload():
    plan = handmade_plan(Profile(examples=5000, model="llama-3.1-70b", gpu="h100", num_gpus=8, num_nodes=2))
    plan.estimate.config = {"num_gpus": 8, "num_nodes": 2, "sharding": "hybrid", "offload": "parameters"}
    assert costs(plan).splitlines()[0] == (
        "Devices: 2 nodes x 8 GPUs, FSDP hybrid sharding (sharded within each node, replicated across nodes), "
        "parameters, gradients and optimizer states in CPU memory")


def test_a_one_device_plan_has_no_devices_line():
    plan = handmade_plan(Profile(examples=5000, model="llama-3.1-8b", gpu="rtx4090"))
    assert costs(plan).splitlines()[0].startswith("Storage: ")
