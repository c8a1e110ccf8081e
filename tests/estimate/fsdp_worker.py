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
    # Gradient accumulation as the Trainer runs FSDP2: a micro-batch inside accelerate's no_sync
    # (set_requires_gradient_sync(False)). The gradients stay on FSDP's unsharded parameters.
    model = tm.build("llama", "float32", "full")
    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("shard",))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    model.set_requires_gradient_sync(False)
    model(**tm.batch("llama", 2, 16, seed=rank)).loss.backward()
    measured["fsdp-fp32-full-no-sync"] = {"unsharded_grads": _unsharded_grad_bytes(model)}
    Path(out, f"{rank}.json").write_text(json.dumps(measured))
    dist.destroy_process_group()


def _unsharded_grad_bytes(model) -> int:
    """Bytes of the gradients FSDP2 holds unsharded between micro-batches (private state: torch has no public
    view of them; FSDPParam keeps them on its unsharded parameter, or converted to the reduce dtype)."""
    from torch.distributed.fsdp import FSDPModule

    total = 0
    for module in model.modules():
        if not isinstance(module, FSDPModule):
            continue
        for group in module._get_fsdp_state()._fsdp_param_groups:
            for param in group.fsdp_params:
                grad = param.unsharded_accumulated_grad
                grad = grad if grad is not None else param._unsharded_param.grad
                total += grad.numel() * grad.element_size() if grad is not None else 0
    return total


def _local_bytes(tensors) -> int:
    """Bytes of this rank's shards (a DTensor's local part)."""
    return sum(t.to_local().numel() * t.element_size() for t in tensors)
