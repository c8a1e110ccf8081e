"""Per-device parameter, gradient and optimizer bytes under data parallelism and sharding.

memory.py calls `shard` on the single-device `Parameters` before walking the
step, so the timeline's peak is found with the per-device figures. Each device
runs its own micro-batch, so activations do not shrink. N is the number of
devices; "16-bit" means bf16 training (`precision="bf16"`), "mixed" fp32
parameters with bf16 autocast. What each engine stores, per device:

- none: everything, once.
- ddp: everything replicated, plus DDP's gradient buckets (a second copy of the
  gradients, `gradient_as_bucket_view=False`, the default). With one device DDP
  is not used: as none.
- fsdp (FSDP2 `fully_shard`, full sharding): parameters, gradients and optimizer
  states split N ways, each in the parameter's own dtype. FSDP keeps no master
  copy: pure bf16 trains bf16 parameters with bf16 Adam states; mixed precision
  keeps fp32 parameters and states and gathers bf16 copies (its
  MixedPrecisionPolicy param_dtype), so autocast finds bf16 weights and caches
  no copies of its own. Gathered at once: the layer computing and the one
  prefetched, plus the root unit (embeddings, final norm, head), in the compute
  dtype; and a layer's whole gradient until it is reduce-scattered.
- zero2 (DeepSpeed ZeRO-2): parameters replicated as stored. A 16-bit model
  trains through fp32 master weights (4 bytes per trained base parameter) with
  fp32 Adam states (8 bytes, where pure-bf16 torch AdamW keeps 4), both split N
  ways; gradients split N ways plus one reduce bucket. peft's adapters are fp32
  already: their states are unchanged. Autocast copies are per device, whole.
- zero3 (DeepSpeed ZeRO-3): zero2's master weights and states, the parameters
  split N ways as well; gathered as FSDP does, in the stored dtype, and under
  autocast only the gathered layers' bf16 copies exist.

DeepSpeed builds its optimizer the same way on a single device (ZeRO with N=1:
master weights and fp32 states), so zero2/zero3 on one GPU is priced as such,
not as `none`; FSDP on one device still gathers its units.
"""

from __future__ import annotations

from dataclasses import replace

from ..architecture import Architecture
from ..methods import Footprint

#: fp32 master weights DeepSpeed keeps for 16-bit parameters (bytes per trained parameter).
MASTER_WEIGHT_BYTES = 4
#: Bytes per trained 16-bit parameter that DeepSpeed's fp32 Adam states add over torch's bf16 states (2 x 2).
FP32_STATE_EXTRA_BYTES = 4
#: Layers FSDP/ZeRO-3 hold gathered at once: the one computing and the one prefetched.
GATHERED_LAYERS = 2


def shard(params, arch: Architecture, fp: Footprint, sharding: str, devices: int, param_bytes: int,
          optimizer: str, autocast: bool):
    """`params` (memory.Parameters) as one of `devices` sees it, and the communication buffers added."""
    if sharding == "none" or (sharding == "ddp" and devices <= 1):
        return params, 0.0
    if sharding == "ddp":
        return params, params.gradients
    split = dict(
        gradients=params.gradients / devices,
        optimizer=params.optimizer / devices,
        layer_gradients=params.layer_gradients / devices,
        head_gradients=params.head_gradients / devices,
        tied_embedding_gradient=params.tied_embedding_gradient / devices,
    )
    if sharding in ("zero2", "zero3"):
        split["optimizer"] = (params.optimizer + _deepspeed_extra(fp, param_bytes, optimizer)) / devices
    if sharding == "zero2":
        bucket = min(params.gradients, 2 * arch.hidden_size**2 * param_bytes)
        return replace(params, **split), bucket
    # fsdp / zero3: parameters partitioned as well; the gathered units in the dtype they compute in.
    gathered_bytes = 2 if (sharding == "fsdp" and autocast) else param_bytes
    gathered_layers = GATHERED_LAYERS * arch.layer_params() * gathered_bytes
    root = (arch.embedding_params() + arch.head_params()) * gathered_bytes
    # A gathered layer's full gradient exists until it is reduce-scattered.
    buffers = gathered_layers + root + (params.layer_gradients or 0.0)
    copies = 0.0 if sharding == "fsdp" else min(params.autocast_copies,
                                                GATHERED_LAYERS * arch.layer_params() * 2 + params.head_copy)
    split.update(
        weights=params.weights / devices,
        upcast=params.upcast / devices,
        adapters=params.adapters / devices,
        autocast_copies=copies,
        head_copy=min(params.head_copy, copies),
    )
    return replace(params, **split), buffers


def _deepspeed_extra(fp: Footprint, param_bytes: int, optimizer: str) -> float:
    """What DeepSpeed's optimizer keeps beyond torch's for trained 16-bit base parameters (all devices together)."""
    base_trainable = max(fp.trainable_params - fp.added_params, 0)
    if param_bytes >= 4 or not base_trainable:
        return 0.0
    states = FP32_STATE_EXTRA_BYTES if optimizer == "adamw" else 0
    return base_trainable * (MASTER_WEIGHT_BYTES + states)
