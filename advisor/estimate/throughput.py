"""Training speed (tokens/s) and run time for one configuration on one accelerator.

estimator.py calls `tokens_per_second` and `time_estimate`. A step takes the
longer of two times, because the GPU runs asynchronously behind the Python
process that launches its kernels:

- the GPU's: the step's FLOPs (2 per multiply-accumulate: forward, backward
  input gradients where the backward runs, weight gradients for what trains,
  the recomputed forward under gradient checkpointing, SDPA's attention) over
  the catalog's peak TFLOPS times a model-FLOPs utilisation;
- the host's: a fixed cost per layer pass (forward, backward x2, recompute),
  grown by every adapter and 4-bit linear the pass runs through.

Small steps (batch 1) are host-bound, so tokens/s is far below the large-batch
figure. The coefficients (calibration.py) are global, fitted on the H100 rows
of the calibration file (benchmarks/estimator_accuracy.py).

With several devices a third time can be the longest, the links' (`communication_seconds`;
the engines overlap their collectives with compute, so the step takes the longest
of the three, not their sum). Ring collectives over n devices move, per device,
(n-1)/n of the tensor for an all-gather or a reduce-scatter and twice that for
an all-reduce. ddp all-reduces the gradients once per optimizer step (the
Trainer's `no_sync` skips the other micro-batches); zero2 reduce-scatters them
every micro-batch and all-gathers the updated parameters once per step; fsdp
and zero3 all-gather every unit for the forward and again for the backward of
every micro-batch, and reduce-scatter the gradients, fsdp once per step
(`no_sync`, see sharding.accumulated_gradients), zero3 every micro-batch;
hybrid does fsdp's inside the node, then all-reduces each device's gradient
shard (1/devices of the gradients) with its peers on the other nodes. FSDP2
under mixed precision reduces the gradients in bf16 (accelerate sets the
MixedPrecisionPolicy's reduce_dtype to its param_dtype), half their fp32 bytes.
A ring over every device of several nodes crosses each node's boundary once:
the bytes a device sends are the bytes its node's network carries (NCCL's
channels split a collective between rings, they do not repeat it), so it goes
at the slower of the two links. Hybrid's cross-node all-reduces are one per
device of the node, all through the node's network: each gets its share.
CPU offload adds host-link traffic: `optimizer` sends the gradient shard out
and takes the parameter shard back once per step, `parameters` brings the
parameter shard in for the forward and the backward and sends the gradient
shard out every micro-batch; and then the optimizer steps on the CPU, after
the backward and before the next forward (nothing to overlap it with), at the
speed of the node's memory: AdamW reads the parameter, its gradient and two
states and writes the parameter and the states, for every trained parameter
the node's devices offloaded. The four bandwidths are assumptions, named below
and reported in the estimate's config; the link inside a node is the GPU
catalog's (`intra_node_bytes_per_s`), where it has one.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from ..architecture import Architecture
from ..methods import Footprint
from . import calibration as cal
from . import activations as act
from .memory import Shape, base_param_bytes, layer_grads, parameters, tokens, trained_layers, trains_base_weights, trains_embeddings
from .sharding import PARTITIONED, gathered_unit_bytes, shard, shard_ways, world_size

#: ASSUMPTION, for a GPU the catalog gives no link figure: bytes/s one device exchanges with the others of its
#: node. The catalog's cards give 13-51 GB/s over PCIe (3.0 x16 to 5.0 x16), 240-720 GB/s over NVLink
#: (A100 to B200), each at LINK_EFFICIENCY of the data sheet's rate.
INTRA_NODE_BYTES_PER_S = 100e9
#: The share of a link's data-sheet rate a collective reaches: H100 NVLink 4 peer-to-peer measures 380 of its
#: 450 GB/s each way (NVIDIA/nccl issue #1264), PCIe 4.0 x16 about 25 of 32 (HOST_LINK_BYTES_PER_S).
LINK_EFFICIENCY = 0.8
#: ASSUMPTION: bytes/s one node exchanges with the other nodes: 100 Gb/s Ethernet, a common cloud link
#: (InfiniBand / EFA clusters have 4-32 times more, for which the estimate is pessimistic). That inter-node
#: links are far slower than intra-node ones is what motivates hybrid sharding (Zhao et al. 2023, PyTorch FSDP:
#: Experiences on Scaling Fully Sharded Data Parallel, arXiv:2304.11277).
INTER_NODE_BYTES_PER_S = 100e9 / 8
#: ASSUMPTION: bytes/s between one device and host memory under CPU offload (PCIe 4.0 x16 as measured in practice).
HOST_LINK_BYTES_PER_S = 25e9
#: ASSUMPTION: bytes/s a node's CPUs stream through its memory in the offloaded optimizer step. A two-socket
#: server's DDR4/DDR5 channels peak at 400-600 GB/s and a workstation's at 50-150 GB/s; a memory-bound AdamW
#: on the CPU reaches part of the peak.
HOST_MEMORY_BYTES_PER_S = 100e9


class StepCost(NamedTuple):
    """What one training step of one micro-batch costs."""

    flops: float
    layer_passes: float  # host-side launch work, in units of one plain layer pass
    tokens: int
    traffic: float  # bytes element-wise kernels move: the saved activations and the logits/loss tensors


def step_cost(arch: Architecture, fp: Footprint, shape: Shape) -> StepCost:
    tok = tokens(arch, fp, shape)
    checkpointing = not tok.use_cache
    matmul_layer = arch.active_matmul_params_per_layer()  # MoE: the routed experts a token runs through
    head = arch.vocab_size * arch.hidden_size if shape.head == "lm" else 0
    attention = 4 * arch.num_heads * arch.dim_per_head * attended_keys(arch, tok.kv_seq)  # QK^T and AV
    adapted = arch.linears_named(fp.adapted_linears)
    adapter_layer = sum(fp.adapter_rank * (l.in_features + l.out_features) for l in adapted)

    layers, backward_layers = arch.num_layers, trained_layers(arch, fp)
    layer_forward = 2 * (matmul_layer + adapter_layer) + attention
    forward = layers * layer_forward + 2 * head
    input_grads = backward_layers * (2 * matmul_layer + 2 * adapter_layer + 2 * attention) + 2 * head
    weight_grads = 2 * fp.trainable_params
    if trains_base_weights(arch, fp):
        weight_grads = 2 * backward_layers * matmul_layer + (2 * head if trains_embeddings(arch, fp) else 0)
    recompute = backward_layers * layer_forward if checkpointing else 0
    per_token = forward + input_grads + weight_grads + recompute

    extra_kernels = cal.HOST_PER_ADAPTER * len(adapted) + (cal.HOST_PER_4BIT_LINEAR * sum(l.is_module for l in arch.layer_linears())
                                                           if fp.quantized_base else 0)
    passes = (layers + 2 * backward_layers + (cal.HOST_RECOMPUTE * backward_layers if checkpointing else 0))
    numerics = act.Numerics.of(shape.precision, fp.upcast_unquantized_fp32)
    saved = sum(act.layer_bytes(arch, numerics, tok, g) for g in layer_grads(arch, fp, checkpointing))
    logits = act.LogitsBytes.of(arch, numerics, tok, shape.head, shape.num_labels)
    traffic = saved * (2 if checkpointing else 1) + logits.kept + logits.backward_extra
    return StepCost(flops=per_token * tok.count, layer_passes=passes * (1 + extra_kernels), tokens=tok.count,
                    traffic=traffic)


def attended_keys(arch: Architecture, kv_seq: int) -> float:
    """Keys a query attends to on average: half the sequence under a causal mask, at most the window in
    sliding-window layers, all of them in an encoder."""
    if arch.kind == "encoder":
        return kv_seq
    full = 0.5 * kv_seq
    if not arch.sliding_window or full <= arch.sliding_window:
        return full
    sliding = arch.sliding_layers / arch.num_layers
    return sliding * arch.sliding_window + (1 - sliding) * full


def tokens_per_second(arch: Architecture, fp: Footprint, shape: Shape, peak_tflops: float,
                      inter_node_bytes_per_s: Optional[float] = None,
                      intra_node_bytes_per_s: Optional[float] = None) -> float:
    """Training tokens per second per device (real tokens: virtual prompt tokens excluded)."""
    cost = step_cost(arch, fp, shape)
    gpu_s = (cost.flops + cost.traffic * cal.FLOPS_PER_TRAFFIC_BYTE) / (peak_tflops * 1e12 * cal.MODEL_FLOPS_UTILISATION)
    host_s = cost.layer_passes * cal.HOST_SECONDS_PER_LAYER_PASS
    links_s = communication_seconds(arch, fp, shape, inter_node_bytes_per_s, intra_node_bytes_per_s)
    return shape.batch * shape.seq / (max(gpu_s, host_s, links_s) + offloaded_step_seconds(arch, fp, shape))


def communication_seconds(arch: Architecture, fp: Footprint, shape: Shape,
                          inter_node_bytes_per_s: Optional[float] = None,
                          intra_node_bytes_per_s: Optional[float] = None) -> float:
    """Seconds one micro-batch spends on collectives and host-link copies (per device; see the docstring), with
    the assumed network between nodes and link inside a node unless others are given."""
    inter_node_bytes_per_s = inter_node_bytes_per_s or INTER_NODE_BYTES_PER_S
    intra = intra_node_bytes_per_s or INTRA_NODE_BYTES_PER_S
    world = world_size(shape.devices, shape.nodes)
    if shape.sharding == "none" or world <= 1:
        return 0.0
    params = parameters(arch, fp, shape)
    stored, steps = params.resident, shape.accumulation_steps
    grads = params.gradients / (2 if shape.sharding in ("fsdp", "hybrid") and shape.precision == "mixed" else 1)
    # A ring over every device of several nodes: each device's bytes cross its node's network once.
    spanning = min(intra, inter_node_bytes_per_s) if shape.nodes > 1 else intra
    if shape.sharding in PARTITIONED:
        layer, root = gathered_unit_bytes(arch, fp, shape.sharding, base_param_bytes(shape.precision),
                                          shape.precision == "mixed")
        gathered = arch.num_layers * layer + root  # the whole model, gathered unit by unit
    if shape.sharding == "ddp":
        links = 2 * _ring(grads, world) / steps / spanning
    elif shape.sharding == "zero2":
        links = (_ring(grads, world) + _ring(stored, world) / steps) / spanning
    elif shape.sharding == "hybrid":
        within = (2 * _ring(gathered, shape.devices) + _ring(grads, shape.devices) / steps) / intra
        # One all-reduce per device of the node, all through the node's network at once.
        across = 2 * _ring(grads / shape.devices, shape.nodes) / steps / (inter_node_bytes_per_s / shape.devices)
        links = within + across
    else:  # fsdp reduces once per step (the Trainer's no_sync), zero3 every micro-batch
        reductions = steps if shape.sharding == "fsdp" else 1
        links = (2 * _ring(gathered, world) + _ring(grads, world) / reductions) / spanning
    ways = shard_ways(shape.sharding, shape.devices, shape.nodes)
    if shape.offload == "optimizer":
        links += (params.gradients + stored) / ways / steps / HOST_LINK_BYTES_PER_S
    elif shape.offload == "parameters":
        links += (2 * stored + params.gradients) / ways / HOST_LINK_BYTES_PER_S
    return links


def offloaded_step_seconds(arch: Architecture, fp: Footprint, shape: Shape) -> float:
    """Seconds per micro-batch of the optimizer step on the CPU under offload: the trained parameters read and
    written, their gradients read (all of the parameters' dtype: the gradients' bytes each), the states read and
    written, for the shards of all the node's devices, at the node's memory speed, once per optimizer step."""
    if shape.offload == "none":
        return 0.0
    params = parameters(arch, fp, shape)
    optimizer = shard(params, arch, fp, shape.sharding, shape.devices, base_param_bytes(shape.precision),
                      shape.optimizer, shape.precision == "mixed", shape.nodes)[0].optimizer  # before offloading
    ways = shard_ways(shape.sharding, shape.devices, shape.nodes)
    per_device = 3 * params.gradients / ways + 2 * optimizer
    return per_device * shape.devices / HOST_MEMORY_BYTES_PER_S / shape.accumulation_steps


def _ring(size: float, devices: int) -> float:
    """Bytes each of `devices` sends in a ring all-gather or reduce-scatter of `size` bytes."""
    return size * (devices - 1) / devices


def peak_tflops(gpu, precision: str) -> float:
    """The catalog figure that applies: tensor-core 16-bit for bf16/fp16/mixed, fp32 otherwise."""
    if precision == "fp32" or not gpu.peak_tflops_bf16:
        return gpu.peak_tflops_fp32
    return gpu.peak_tflops_bf16


def intra_node_bytes_per_s(gpu) -> float:
    """Bytes/s one of `gpu`'s devices exchanges with the others of its node: the catalog's link rate times
    LINK_EFFICIENCY, or the assumption where the catalog has none."""
    rate = getattr(gpu, "intra_node_gb_per_s", None)
    return rate * 1e9 * LINK_EFFICIENCY if rate else INTRA_NODE_BYTES_PER_S


def hours(train_tokens: int, tokens_per_s: float, devices: int) -> float:
    return train_tokens / (tokens_per_s * devices) / 3600 if tokens_per_s else 0.0


def cost(hours_: float, price_per_hour: Optional[float], devices: int) -> Optional[float]:
    """Price of the run: device-hours times the price of one device-hour."""
    return None if price_per_hour is None else hours_ * devices * price_per_hour
