"""Per-rank parameter, gradient and optimizer-state bytes under FSDP2, measured with real processes.

Four CPU processes (gloo) stand for 2 nodes x 2 devices. Each builds the tiny
Llama of tiny_models.py, shards it with `torch.distributed.fsdp.fully_shard`
(each decoder layer a unit, then the root, as accelerate wraps it) over a 1-D
mesh of all four ranks (fsdp: W = 4 ways) or a 2-D (replicate, shard) mesh of
2 x 2 (hybrid, HSDP: 2 ways within a "node"), runs one forward/backward and
one AdamW step, and sums the bytes of its local shards (`DTensor.to_local()`)
of the parameters, their gradients and the optimizer states (exp_avg,
exp_avg_sq; the scalar step counts left out, as test_parameters.py does).
advisor/estimate/sharding.py must give the same bytes per device exactly:
every sharded dimension of the tiny model (vocabulary 256, hidden 64, 2 kv
heads x 16, intermediate 176, LoRA rank 8) divides by 4, so FSDP2's dim-0
chunks are equal and unpadded on every rank.

Under gradient accumulation the Trainer wraps every micro-batch but the last in
accelerate's `no_sync`, FSDP2's `set_requires_gradient_sync(False)`: each rank
then holds the whole unsharded gradients (read from FSDP2's private per-
parameter state, the only view torch gives), as sharding.accumulated_gradients
prices them.

Not measured here: the gathered units and the unsharded layer gradient
(`communication_buffers`) are transient device allocations; CPU has no
allocator peak to read, so the GPU harness (test_gpu_harness.py) is where they
would be checked. CPU offload has nothing to offload from on CPU. DeepSpeed is
not installed: its ZeRO-2/3 figures rest on the derivation in sharding.py's
docstring (fp32 master weights and fp32 Adam states split W ways).
"""

from __future__ import annotations

import json

import pytest

from advisor.estimate import memory
from advisor.estimate.sharding import accumulated_gradients, shard

from . import fsdp_worker
from . import tiny_models as tm

NODES, DEVICES = 2, 2
WORLD = NODES * DEVICES


def _spawn_rank(rank: int, out: str) -> None:
    fsdp_worker.run(rank, WORLD, NODES, f"file://{out}/rendezvous", out)


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> list[dict]:
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("fsdp")
    mp.spawn(_spawn_rank, args=(str(out),), nprocs=WORLD, join=True)
    return [json.loads((out / f"{rank}.json").read_text()) for rank in range(WORLD)]


def predicted(sharding: str, precision: str, method: str) -> dict:
    hp = {"r": 8} if method == "lora" else {}
    arch, fp = tm.architecture("llama"), tm.footprint("llama", method, **hp)
    shape = memory.Shape(precision=precision, batch=2, seq=16, gradient_checkpointing=False, optimizer="adamw",
                         head="lm", num_labels=2)
    params, _ = shard(memory.parameters(arch, fp, shape), arch, fp, sharding, DEVICES,
                      memory.base_param_bytes(precision), "adamw", autocast=precision == "mixed", nodes=NODES)
    return {"params": params.resident, "grads": params.gradients, "optimizer": params.optimizer}


@pytest.mark.slow
@pytest.mark.parametrize("label", [label for label, *_ in fsdp_worker.CONFIGS])
def test_every_rank_holds_the_bytes_sharding_py_predicts(measured, label):
    sharding, precision, method = label.split("-")
    expected = predicted(sharding, {"fp32": "fp32", "bf16": "bf16", "mixed": "mixed"}[precision], method)
    for rank in measured:
        assert rank[label] == expected, (label, rank[label], expected)


@pytest.mark.slow
def test_fsdp_holds_whole_gradients_between_micro_batches(measured):
    """accelerate's no_sync for FSDP2 (the Trainer's gradient accumulation) leaves every rank with the whole
    unsharded gradients, as sharding.accumulated_gradients prices them."""
    arch, fp = tm.architecture("llama"), tm.footprint("llama", "full")
    shape = memory.Shape(precision="fp32", batch=2, seq=16, gradient_checkpointing=False, optimizer="adamw",
                         head="lm", num_labels=2, accumulation_steps=4)
    whole = memory.parameters(arch, fp, shape)
    sharded, _ = shard(whole, arch, fp, "fsdp", DEVICES, 4, "adamw", autocast=False, nodes=NODES)
    for rank in measured:
        assert rank["fsdp-fp32-full-no-sync"]["unsharded_grads"] == accumulated_gradients(whole, sharded, "fsdp")
        assert accumulated_gradients(whole, sharded, "fsdp") == WORLD * sharded.gradients


@pytest.mark.slow
def test_hybrid_holds_twice_fsdp_on_two_nodes(measured):
    """Sharded over the 2 devices of a node instead of all 4: each rank holds twice as much."""
    for rank in measured:
        assert rank["hybrid-fp32-full"] == {part: 2 * value for part, value in rank["fsdp-fp32-full"].items()}
