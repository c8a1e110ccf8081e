"""One rank of the measured-sharding test: tiny Llamas under FSDP2, one AdamW step, local shard bytes.

Run by torch.multiprocessing.spawn from test_sharding_measured.py (a module of
its own, so the spawned processes import it without pytest's test module).
Each rank writes {config: {params, grads, optimizer}} bytes of its local shards
to OUT/<rank>.json.
"""

from __future__ import annotations

import json
from pathlib import Path

#: What each rank measures: (label, mesh shape, dtype, method, FSDP2 mixed precision).
#: A 1-D mesh is full sharding over every rank; a 2-D (replicate, shard) mesh is hybrid sharding (HSDP).
CONFIGS = (
    ("fsdp-fp32-full", "full", "float32", "full", False),
    ("fsdp-bf16-full", "full", "bfloat16", "full", False),
    ("fsdp-mixed-full", "full", "float32", "full", True),
    ("fsdp-fp32-lora", "full", "float32", "lora", False),
    ("hybrid-fp32-full", "hybrid", "float32", "full", False),
    ("hybrid-bf16-full", "hybrid", "bfloat16", "full", False),
)


def run(rank: int, world: int, nodes: int, init: str, out: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from . import tiny_models as tm

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    measured = {}
    for label, sharding, dtype, method, mixed in CONFIGS:
        if sharding == "hybrid":
            mesh = init_device_mesh("cpu", (nodes, world // nodes), mesh_dim_names=("replicate", "shard"))
        else:
            mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("shard",))
        model = tm.build("llama", dtype, method, **({"r": 8} if method == "lora" else {}))
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if mixed \
            else MixedPrecisionPolicy()
        # As accelerate wraps a transformers model: each decoder layer a unit, the rest the root unit.
        for layer in model.get_base_model().model.layers if method == "lora" else model.model.layers:
            fully_shard(layer, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable)
        model(**tm.batch("llama", 2, 16, seed=rank)).loss.backward()
        optimizer.step()
        measured[label] = {
            "params": _local_bytes(model.parameters()),
            "grads": _local_bytes(p.grad for p in trainable),
            "optimizer": _local_bytes(t for state in optimizer.state.values()
                                      for name, t in state.items() if name != "step"),
        }
    Path(out, f"{rank}.json").write_text(json.dumps(measured))
    dist.destroy_process_group()


def _local_bytes(tensors) -> int:
    """Bytes of this rank's shards (a DTensor's local part)."""
    return sum(t.to_local().numel() * t.element_size() for t in tensors)
