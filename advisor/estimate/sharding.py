"""Per-device parameter, gradient and optimizer bytes under data parallelism, sharding and CPU offload.

memory.py calls `shard` on the single-device `Parameters` before walking the
step, so the timeline's peak is found with the per-device figures. Each device
runs its own micro-batch, so activations do not shrink. The run has `nodes`
machines of `devices` devices each, W = devices x nodes in all; "16-bit" means
bf16 training (`precision="bf16"`), "mixed" fp32 parameters with bf16 autocast.
What each engine stores, per device:

- none: everything, once.
- ddp: everything replicated, plus DDP's gradient buckets (a second copy of the
  gradients, `gradient_as_bucket_view=False`, the default). With one device DDP
  is not used: as none.
- fsdp (FSDP2 `fully_shard` over all W devices, full sharding): parameters,
  gradients and optimizer states split W ways, each in the parameter's own
  dtype. FSDP keeps no master copy: pure bf16 trains bf16 parameters with bf16
  Adam states; mixed precision keeps fp32 parameters and states and gathers
  bf16 copies (its MixedPrecisionPolicy param_dtype), so autocast finds bf16
  weights and caches no copies of its own. Gathered at once: the layer
  computing and the one prefetched, plus the root unit (embeddings, final
  norm, head), in the compute dtype; and a layer's whole gradient until it is
  reduce-scattered. Under gradient accumulation the Trainer's `no_sync` keeps
  the whole unsharded gradients between micro-batches (`accumulated_gradients`).
- hybrid (FSDP2 `fully_shard` on a 2-D (nodes, devices) DeviceMesh, HSDP):
  fsdp's split over the `devices` of one node only, so each node holds a whole
  replica and only the gradient shards are all-reduced across nodes. Per
  device: the parameters, gradients and states split `devices` ways (more than
  fsdp's W ways, less than ddp's whole copy); the gathered units as fsdp. On
  one node hybrid is fsdp.
- zero2 (DeepSpeed ZeRO-2): parameters replicated as stored. A 16-bit model
  trains through fp32 master weights (4 bytes per trained base parameter) with
  fp32 Adam states (8 bytes, where pure-bf16 torch AdamW keeps 4), both split W
  ways; gradients split W ways plus one reduce bucket. peft's adapters are fp32
  already: their states are unchanged. Autocast copies are per device, whole.
- zero3 (DeepSpeed ZeRO-3): zero2's master weights and states, the parameters
  split W ways as well; gathered as FSDP does, in the stored dtype, and under
  autocast only the gathered layers' bf16 copies exist.

DeepSpeed builds its optimizer the same way on a single device (ZeRO with N=1:
master weights and fp32 states), so zero2/zero3 on one GPU is priced as such,
not as `none`; FSDP on one device still gathers its units.

A 4-bit base (QLoRA) is sharded by FSDP only when bitsandbytes stores the
packed NF4 weights in the compute dtype (`bnb_4bit_quant_storage`, Answer.AI's
FSDP-QLoRA): the same bytes, split like any parameter, and gathered per layer
as the 4-bit bytes (the 16-bit embeddings and head in the root unit). The
search never proposes ZeRO for a 4-bit base.

Offload (`OFFLOADS` says which engine offers which):

- optimizer (DeepSpeed `offload_optimizer`, ZeRO-2/3): the optimizer states and
  DeepSpeed's fp32 master weights live in host memory and the step runs on the
  CPU; the device keeps its parameter and gradient shards.
- parameters (FSDP2 `CPUOffloadPolicy`, DeepSpeed ZeRO-3 `offload_param` with
  `offload_optimizer`): the parameter, gradient and optimizer shards all live
  in host memory. The device keeps only what is gathered: the units computing
  and prefetched, and a layer's whole gradient until it is reduce-scattered
  and copied out.
"""

from __future__ import annotations

from ..architecture import Architecture
from ..methods import Footprint

#: fp32 master weights DeepSpeed keeps for 16-bit parameters (bytes per trained parameter).
MASTER_WEIGHT_BYTES = 4
#: Bytes per trained 16-bit parameter that DeepSpeed's fp32 Adam states add over torch's bf16 states (2 x 2).
FP32_STATE_EXTRA_BYTES = 4
#: Layers FSDP/ZeRO-3 hold gathered at once: the one computing and the one prefetched.
GATHERED_LAYERS = 2
#: Engines whose parameters are partitioned (and gathered unit by unit).
PARTITIONED = ("fsdp", "hybrid", "zero3")
#: How a person reads each engine and offload setting (the plan's changes, `advisor plan` and `advisor estimate`).
ENGINE_NAMES = {"ddp": "DDP (replicated)", "fsdp": "FSDP full sharding", "zero2": "DeepSpeed ZeRO-2",
                "zero3": "DeepSpeed ZeRO-3",
                "hybrid": "FSDP hybrid sharding (sharded within each node, replicated across nodes)"}
OFFLOAD_NAMES = {"optimizer": "optimizer states in CPU memory",
                 "parameters": "parameters, gradients and optimizer states in CPU memory"}
#: What each offload setting needs: the engines that offer it.
OFFLOADS = {"none": ("none", "ddp", "fsdp", "hybrid", "zero2", "zero3"),
            "optimizer": ("zero2", "zero3"), "parameters": ("fsdp", "hybrid", "zero3")}


def world_size(devices: int, nodes: int) -> int:
    return devices * nodes


def shard_ways(sharding: str, devices: int, nodes: int) -> int:
    """Devices one copy of the model state is split over: the node's for hybrid, all of them otherwise."""
    if sharding in ("none", "ddp"):
        return 1
    return devices if sharding == "hybrid" else world_size(devices, nodes)


def hardware_label(devices: int, nodes: int, gpu: str = "") -> str:
    """'8 GPUs', or '2 nodes x 8 GPUs'; with a GPU id, 'h100' (one), '8 h100' or '2 nodes x 8 h100'."""
    if gpu and devices == nodes == 1:
        return gpu
    gpus = f"{devices} {gpu}" if gpu else f"{devices} GPU{'s' if devices > 1 else ''}"
    return f"{nodes} nodes x {gpus}" if nodes > 1 else gpus


def shard(params, arch: Architecture, fp: Footprint, sharding: str, devices: int, param_bytes: int,
          optimizer: str, autocast: bool, nodes: int = 1, offload: str = "none"):
    """`params` (memory.Parameters) as one of `devices` x `nodes` sees it, and the communication buffers added."""
    if sharding not in OFFLOADS[offload]:
        raise ValueError(f"offload '{offload}' needs sharding {' or '.join(OFFLOADS[offload])}, not '{sharding}'")
    if sharding == "none" or (sharding == "ddp" and world_size(devices, nodes) <= 1):
        return params, 0.0
    if sharding == "ddp":
        return params, params.gradients
    ways = shard_ways(sharding, devices, nodes)
    split = dict(
        gradients=params.gradients / ways,
        optimizer=params.optimizer / ways,
        layer_gradients=params.layer_gradients / ways,
        head_gradients=params.head_gradients / ways,
        tied_embedding_gradient=params.tied_embedding_gradient / ways,
    )
    if sharding in ("zero2", "zero3"):
        split["optimizer"] = (params.optimizer + _deepspeed_extra(fp, param_bytes, optimizer)) / ways
    if offload != "none":
        split["optimizer"] = 0.0
    if sharding == "zero2":
        bucket = min(params.gradients, 2 * arch.hidden_size**2 * param_bytes)
        return params._replace(**split), bucket
    # fsdp / hybrid / zero3: parameters partitioned as well; the gathered units in the dtype they compute in.
    layer, root = gathered_unit_bytes(arch, fp, sharding, param_bytes, autocast)
    # A gathered layer's full gradient exists until it is reduce-scattered.
    buffers = GATHERED_LAYERS * layer + root + (params.layer_gradients or 0.0)
    copies = 0.0 if sharding != "zero3" else min(params.autocast_copies,
                                                 GATHERED_LAYERS * arch.layer_params() * 2 + params.head_copy)
    split.update(
        weights=params.weights / ways,
        upcast=params.upcast / ways,
        adapters=params.adapters / ways,
        autocast_copies=copies,
        head_copy=min(params.head_copy, copies),
    )
    if offload == "parameters":  # the shards of everything on the host; reduced gradient shards copied out
        split.update(weights=0.0, upcast=0.0, adapters=0.0, gradients=0.0, layer_gradients=0.0,
                     head_gradients=0.0, tied_embedding_gradient=0.0)
    return params._replace(**split), buffers


def accumulated_gradients(whole, sharded, sharding: str) -> float:
    """Gradient bytes a device holds between micro-batches of one optimizer step.

    The Trainer runs every micro-batch but the last inside accelerate's
    `no_sync`, which for FSDP2 is `set_requires_gradient_sync(False)`: no
    reduce-scatter (nor HSDP's all-reduce), so each device accumulates the
    whole unsharded gradients until the last micro-batch reduces them.
    DeepSpeed ZeRO reduces every micro-batch (accelerate leaves it alone): its
    gradient partitions, as DDP keeps its own whole gradients.
    """
    return whole.gradients if sharding in ("fsdp", "hybrid") else sharded.gradients


def offloaded_bytes(params, arch: Architecture, fp: Footprint, sharding: str, devices: int, param_bytes: int,
                    optimizer: str, autocast: bool, nodes: int = 1, offload: str = "none") -> float:
    """Host memory one device's offloaded shards take (its node needs `devices` times this)."""
    if offload == "none":
        return 0.0

    def model_state(sharded) -> float:
        return sharded.resident + sharded.gradients + sharded.optimizer

    args = (params, arch, fp, sharding, devices, param_bytes, optimizer, autocast, nodes)
    return model_state(shard(*args, offload="none")[0]) - model_state(shard(*args, offload=offload)[0])


def gathered_unit_bytes(arch: Architecture, fp: Footprint, sharding: str, param_bytes: int,
                        autocast: bool) -> tuple[float, float]:
    """Bytes of one gathered layer and of the gathered root unit (embeddings, final norm, head)."""
    root_params = arch.embedding_params() + arch.head_params()
    if fp.quantized_base:  # FSDP-QLoRA: the layer's NF4 linears and its 16-bit (or fp32-upcast) rest
        from .memory import NF4_BYTES_PER_PARAM, quantized_params  # memory imports this module

        rest_bytes = 4 if fp.upcast_unquantized_fp32 else 2
        quantized = quantized_params(arch) / arch.num_layers
        layer = quantized * NF4_BYTES_PER_PARAM + (arch.layer_params() - quantized) * rest_bytes
        return layer, root_params * rest_bytes
    gathered_bytes = 2 if (sharding != "zero3" and autocast) else param_bytes
    return arch.layer_params() * gathered_bytes, root_params * gathered_bytes


def _deepspeed_extra(fp: Footprint, param_bytes: int, optimizer: str) -> float:
    """What DeepSpeed's optimizer keeps beyond torch's for trained 16-bit base parameters (all devices together)."""
    base_trainable = max(fp.trainable_params - fp.added_params, 0)
    if param_bytes >= 4 or not base_trainable:
        return 0.0
    states = FP32_STATE_EXTRA_BYTES if optimizer == "adamw" else 0
    return base_trainable * (MASTER_WEIGHT_BYTES + states)
