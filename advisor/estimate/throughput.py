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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..architecture import Architecture
from ..methods import Footprint
from . import calibration as cal
from . import activations as act
from .memory import Shape, layer_grads, tokens, trained_layers, trains_base_weights, trains_embeddings


@dataclass(frozen=True)
class StepCost:
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


def tokens_per_second(arch: Architecture, fp: Footprint, shape: Shape, peak_tflops: float) -> float:
    """Training tokens per second per device (real tokens: virtual prompt tokens excluded)."""
    cost = step_cost(arch, fp, shape)
    gpu_s = (cost.flops + cost.traffic * cal.FLOPS_PER_TRAFFIC_BYTE) / (peak_tflops * 1e12 * cal.MODEL_FLOPS_UTILISATION)
    host_s = cost.layer_passes * cal.HOST_SECONDS_PER_LAYER_PASS
    return shape.batch * shape.seq / max(gpu_s, host_s)


def peak_tflops(gpu, precision: str) -> float:
    """The catalog figure that applies: tensor-core 16-bit for bf16/fp16/mixed, fp32 otherwise."""
    if precision == "fp32" or not gpu.peak_tflops_bf16:
        return gpu.peak_tflops_fp32
    return gpu.peak_tflops_bf16


def hours(train_tokens: int, tokens_per_s: float, devices: int) -> float:
    return train_tokens / (tokens_per_s * devices) / 3600 if tokens_per_s else 0.0


def cost(hours_: float, price_per_hour: Optional[float], devices: int) -> Optional[float]:
    """Price of the run: device-hours times the price of one device-hour."""
    return None if price_per_hour is None else hours_ * devices * price_per_hour
