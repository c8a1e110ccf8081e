"""The optimizer step's own allocations, per AdamW kernel, against torch on tiny CPU models.

`torch.optim.AdamW(foreach=True)` (torch's default on CUDA) materialises
sqrt(exp_avg_sq) for a whole param group at once; `fused=True` (what `advisor
execute` runs) updates in place. The bytes a step allocates beyond what exists
before it are tracked op by op with a TorchDispatchMode: every storage an op
returns that none of its inputs had is counted until its tensor is freed.
"""

import weakref

import pytest

from advisor.estimate import EstimateRequest, estimate, memory

from . import tiny_models as tm


def step_allocations(model, **adamw) -> int:
    """Peak bytes allocated during the second `step()` (the first one creates the states) above its start."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LiveBytes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live = self.peak = 0
            self.owned: dict[int, int] = {}

        def free(self, key: int) -> None:
            self.live -= self.owned.pop(key, 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
            out = func(*args, **(kwargs or {}))
            for tensor in tree_leaves(out):
                if not isinstance(tensor, torch.Tensor):
                    continue
                key = tensor.untyped_storage().data_ptr()
                if key in inputs or key in self.owned:
                    continue
                self.owned[key] = tensor.untyped_storage().nbytes()
                self.live += self.owned[key]
                weakref.finalize(tensor, self.free, key)
            self.peak = max(self.peak, self.live)
            return out

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], **adamw)
    for _ in range(2):
        model(**tm.batch("llama", 2, 16)).loss.backward()
        if optimizer.state:
            with LiveBytes() as mode:
                optimizer.step()
            return mode.peak
        optimizer.step()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("implementation", ["foreach", "fused"])
@pytest.mark.parametrize("method, hp, dtype", [
    ("full", {}, "float32"), ("full", {}, "bfloat16"), ("lora", {"r": 8}, "bfloat16"),
], ids=["full-fp32", "full-bf16", "lora-bf16"])
def test_step_allocations_match_torch(method, hp, dtype, implementation):
    model = tm.build("llama", dtype, method, **hp)
    shape = memory.Shape(precision="fp32" if dtype == "float32" else "bf16", batch=2, seq=16,
                         gradient_checkpointing=False, optimizer="adamw", head="lm", num_labels=2,
                         adamw_implementation=implementation)
    params = memory.parameters(tm.architecture("llama"), tm.footprint("llama", method, **hp), shape)
    predicted = memory.optimizer_step_temporaries(shape, params)
    assert step_allocations(model, **{implementation: True}) == predicted
    assert (predicted > 0) == (implementation == "foreach")


def full_request(**shape) -> EstimateRequest:
    from advisor.knowledge_base import resolve_model
    from advisor.manager import get_method

    plugin = get_method("full")
    arch = resolve_model("llama-3.2-3b").architecture
    return EstimateRequest(architecture=arch, footprint=plugin.footprint(arch, plugin.hyperparameters({})), **shape)


def test_foreach_moves_the_peak_to_the_step_only_where_activations_are_small():
    small = dict(batch_size=1, seq_len=512, gradient_checkpointing=True)
    fused, foreach = (estimate(full_request(**small, adamw_implementation=kind)) for kind in ("fused", "foreach"))
    assert foreach.config["peak_phase"] == "optimizer step"
    gradients = foreach.memory.breakdown["gradients"]
    assert foreach.memory.breakdown["optimizer_temporaries"] == pytest.approx(gradients)
    assert foreach.memory.peak_gib > fused.memory.peak_gib
    # peft's full fine-tuning comparison shape: the loss backward (logits, activations) stays the peak.
    large = dict(batch_size=4, seq_len=768)
    assert (estimate(full_request(**large, adamw_implementation="foreach")).memory.peak_gib
            == estimate(full_request(**large)).memory.peak_gib)


@pytest.mark.parametrize("sharding, devices, share", [("fsdp", 4, 1 / 4), ("ddp", 2, 1.0), ("zero3", 4, 0.0)])
def test_foreach_temporary_is_each_devices_own_states(sharding, devices, share):
    """FSDP shards the states the kernel reads; DDP replicates them; DeepSpeed steps with its own kernel."""
    from advisor.estimate.estimator import shape_of
    from advisor.estimate.sharding import shard

    request = full_request(batch_size=1, seq_len=512, num_gpus=devices, sharding=sharding,
                           adamw_implementation="foreach")
    shape = shape_of(request)
    whole = memory.parameters(request.architecture, request.footprint, shape)
    params, _ = shard(whole, request.architecture, request.footprint, sharding, devices, 2, "adamw", autocast=False)
    assert memory.optimizer_step_temporaries(shape, params) == pytest.approx(whole.gradients * share)
