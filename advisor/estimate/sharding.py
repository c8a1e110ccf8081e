"""Per-device parameter, gradient and optimizer bytes under data parallelism and sharding.

memory.py calls `shard` on the single-device `Parameters` before walking the
step, so the timeline's peak is found with the per-device figures. Each device
runs its own micro-batch, so activations do not shrink. What each scheme keeps:

- ddp: everything replicated, plus DDP's gradient buckets (a second copy of the
  gradients, `gradient_as_bucket_view=False`, the default).
- zero2 (DeepSpeed): gradients and optimizer states partitioned; bf16 training
  keeps fp32 master weights, also partitioned; one reduce bucket of gradients.
- fsdp (full shard) / zero3: parameters partitioned too; the unit being computed
  (a transformer layer) and the one being prefetched are gathered whole, and the
  root unit (embeddings, lm_head) stays gathered through forward and backward.
"""

from __future__ import annotations

from dataclasses import replace

from ..architecture import Architecture

#: fp32 master weights DeepSpeed keeps for 16-bit parameters (bytes per trainable parameter).
MASTER_WEIGHT_BYTES = 4
#: Layers FSDP/ZeRO-3 hold gathered at once: the one computing and the one prefetched.
GATHERED_LAYERS = 2


def shard(params, arch: Architecture, sharding: str, devices: int, trainable: int, param_bytes: int):
    """`params` (memory.Parameters) as one of `devices` sees it, and the communication buffers added."""
    if devices <= 1 or sharding == "none":
        return params, 0.0
    if sharding == "ddp":
        return params, params.gradients
    master = trainable * MASTER_WEIGHT_BYTES if param_bytes < 4 else 0.0
    split = dict(
        gradients=params.gradients / devices,
        optimizer=(params.optimizer + master) / devices,
        layer_gradients=params.layer_gradients / devices,
        head_gradients=params.head_gradients / devices,
        tied_embedding_gradient=params.tied_embedding_gradient / devices,
    )
    if sharding == "zero2":
        bucket = min(params.gradients, 2 * arch.hidden_size**2 * param_bytes)
        return replace(params, **split), bucket
    # fsdp / zero3: parameters partitioned as well.
    root = (arch.embedding_params() + arch.head_params()) * param_bytes
    gathered = GATHERED_LAYERS * arch.layer_params() * param_bytes + root
    # A gathered layer's full gradient exists until it is reduce-scattered.
    buffers = gathered + (params.layer_gradients or 0.0)
    split.update(
        weights=params.weights / devices,
        upcast=params.upcast / devices,
        adapters=params.adapters / devices,
    )
    return replace(params, **split), buffers
