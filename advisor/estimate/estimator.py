"""`estimate()`: memory, storage and time of one EstimateRequest, as an `advisor.models.Estimate`.

Called by the planner, `advisor estimate` and the preflight check before a
run. Pure Python: memory.py walks the step, storage.py sizes the files,
throughput.py times the run.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from ..models import Estimate, MemoryEstimate, TimeEstimate
from ..precision import Dtypes, resolve_dtypes
from . import EstimateRequest
from . import memo, throughput
from .calibration import TIME_BAND
from .memory import GIB, Shape, base_param_bytes, parameters, peak_memory
from .sharding import offloaded_bytes, world_size
from .storage import storage_estimate

#: CUDA context and kernels loaded by torch (not in max_memory_allocated).
CUDA_CONTEXT_GIB = 0.5
#: The caching allocator holds more than is allocated (the calibration rows: median 9%, up to 23%).
ALLOCATOR_SLACK = 0.10

#: The fit search asks about the same configuration more than once (84 calls for 60 in one plan).
_peak_memory = memo.by_footprint(peak_memory)


def dtypes_of(request: EstimateRequest) -> Dtypes:
    """The dtypes the run will really use on the request's GPU (without one: a bf16-capable CUDA GPU)."""
    gpu = request.gpu
    return resolve_dtypes(request.precision, cuda=gpu.cuda if gpu else True, bf16=gpu.bf16 if gpu else True,
                          frozen_base=request.footprint.freezes_base_weights)


def shape_of(request: EstimateRequest, accumulation_steps: int = 1) -> Shape:
    dtypes = dtypes_of(request)
    return Shape(
        precision=dtypes.recipe, trained_base_fp32=dtypes.weights == "float16", batch=request.batch_size * request.footprint.sequences_per_example,
        seq=request.seq_len,
        gradient_checkpointing=request.gradient_checkpointing, optimizer=request.optimizer,
        head=request.head, num_labels=request.num_labels,
        accumulation_steps=max(accumulation_steps, request.gradient_accumulation_steps),
        sharding=request.sharding, devices=request.num_gpus, nodes=request.num_nodes, offload=request.offload,
        fused_loss=request.fused_cross_entropy, adamw_implementation=request.adamw_implementation,
    )


def device_memory(request: EstimateRequest) -> Optional[float]:
    if request.device_memory_gib is not None:
        return request.device_memory_gib
    return request.gpu.memory_gib if request.gpu is not None else None


def overhead_gib(peak_gib: float, cuda: bool = True) -> float:
    """What the device needs beyond `peak_gib`: the CUDA context and the allocator's cached slack."""
    return (CUDA_CONTEXT_GIB if cuda else 0.0) + ALLOCATOR_SLACK * peak_gib


class MemoryFit(NamedTuple):
    """What the fit search asks of a configuration: its peak, whether it fits, what it offloads."""

    peak_gib: float  # rounded as Estimate.memory.peak_gib
    fits: Optional[bool]  # None: no device memory known
    device_memory_gib: Optional[float]
    offloaded_gib_per_node: float


def memory_fit(request: EstimateRequest) -> MemoryFit:
    """estimate()'s memory answer alone: the search asks it of ~60 configurations a plan, and building each
    whole Estimate (its models, storage, time and config) was 40% of a cold plan's planning."""
    shape = shape_of(request)
    peak_gib, overhead, device = _peak_overhead_device(request, shape)
    return MemoryFit(round(peak_gib, 3), _fits(peak_gib, overhead, device), device,
                     _host_memory(request, shape).get("offloaded_gib_per_node", 0.0))


def _peak_overhead_device(request: EstimateRequest, shape: Shape) -> tuple[float, float, Optional[float]]:
    peak_gib = _peak_memory(request.architecture, request.footprint, shape).total / GIB
    cuda = request.gpu.cuda if request.gpu is not None else True
    return peak_gib, overhead_gib(peak_gib, cuda), device_memory(request)


def _fits(peak_gib: float, overhead: float, device: Optional[float]) -> Optional[bool]:
    return None if device is None else peak_gib + overhead <= device


def estimate(request: EstimateRequest) -> Estimate:
    """Peak memory per device, whether it fits, disk space, and (with a GPU) speed, hours and cost."""
    arch, fp = request.architecture, request.footprint
    shape = shape_of(request)
    peak = _peak_memory(arch, fp, shape)
    peak_gib, overhead, device = _peak_overhead_device(request, shape)
    return Estimate(
        memory=MemoryEstimate(
            peak_gib=round(peak_gib, 3), per_device_gib=round(peak_gib, 3),
            breakdown={part: round(value / GIB, 3) for part, value in peak.parts.items()},
            overhead_gib=round(overhead, 3),
        ),
        device_memory_gib=device,
        fits=_fits(peak_gib, overhead, device),
        storage=storage_estimate(arch, fp, shape.precision, request.tasks),
        time=_time(request, shape),
        trainable_params=fp.trainable_params,
        total_params=arch.total_params() + fp.added_params,
        config={
            "model_family": arch.family, "precision": request.precision, "dtypes": dtypes_of(request).label,
            "batch_size": request.batch_size,
            "seq_len": request.seq_len,
            "gradient_checkpointing": request.gradient_checkpointing or fp.forces_gradient_checkpointing,
            "gradient_accumulation_steps": shape.accumulation_steps, "optimizer": request.optimizer,
            "num_gpus": request.num_gpus, "num_nodes": request.num_nodes, "sharding": request.sharding,
            "offload": request.offload, "peak_phase": peak.phase, **_host_memory(request, shape),
            **_links_assumed(request), "fused_cross_entropy": shape.fused_loss,
            "adamw_implementation": request.adamw_implementation,
        },
    )


def _time(request: EstimateRequest, shape: Shape) -> Optional[TimeEstimate]:
    """Tokens/s on the request's GPU; hours and cost when the run's token count is known."""
    per_device = _tokens_per_second(request, shape, throughput.INTER_NODE_BYTES_PER_S)
    if per_device is None:
        return None
    devices = world_size(request.num_gpus, request.num_nodes)
    train_tokens = request.train_tokens or 0
    hours = throughput.hours(train_tokens, per_device, devices)
    cost = None if request.train_tokens is None else throughput.cost(hours, request.price_per_hour, devices)
    low, high = TIME_BAND
    return TimeEstimate(
        tokens_per_s=round(per_device * devices, 1),
        train_tokens=train_tokens,
        hours=round(hours, 4),
        cost=_round(cost),
        hours_band=(round(hours * low, 4), round(hours * high, 4)) if train_tokens else None,
        cost_band=None if cost is None else (round(cost * low, 2), round(cost * high, 2)),
        kfold=request.kfold,
    )


def tokens_per_second(request: EstimateRequest, inter_node_bytes_per_s: float) -> Optional[float]:
    """All the devices' tokens/s with another network between the nodes than the assumed one (None without a
    GPU that has a FLOPS figure): how much a configuration's speed turns on that assumption."""
    per_device = _tokens_per_second(request, shape_of(request), inter_node_bytes_per_s)
    return None if per_device is None else per_device * world_size(request.num_gpus, request.num_nodes)


def _tokens_per_second(request: EstimateRequest, shape: Shape, inter_node_bytes_per_s: float) -> Optional[float]:
    if request.gpu is None:
        return None
    if request.packed_mean_tokens:
        # Packed rows hold real tokens only (no padding), each example attending to itself: a step costs its rows
        # at the data's mean length, and tokens/s counts those. The memory peak (estimate()) keeps seq_len: the
        # worst case, a micro-batch of the longest examples.
        shape = shape._replace(seq=max(1, min(shape.seq, round(request.packed_mean_tokens))))
    tflops = throughput.peak_tflops(request.gpu, shape.precision)
    if not tflops:
        return None
    return throughput.tokens_per_second(request.architecture, request.footprint, shape, tflops, inter_node_bytes_per_s,
                                        throughput.intra_node_bytes_per_s(request.gpu))


def _host_memory(request: EstimateRequest, shape: Shape) -> dict[str, float]:
    """CPU memory each node gives the offloaded shards (GiB), when something is offloaded."""
    if request.offload == "none":
        return {}
    pb = base_param_bytes(shape.precision)
    per_device = offloaded_bytes(
        parameters(request.architecture, request.footprint, shape), request.architecture, request.footprint,
        shape.sharding, shape.devices, pb, shape.optimizer, shape.precision == "mixed", shape.nodes, shape.offload)
    return {"offloaded_gib_per_node": round(per_device * request.num_gpus / GIB, 3)}


def _links_assumed(request: EstimateRequest) -> dict[str, float]:
    """The link bandwidths the time assumes (GB/s), for a run whose devices talk to each other or the host."""
    assumed: dict[str, float] = {}
    if world_size(request.num_gpus, request.num_nodes) > 1 and request.sharding != "none":
        assumed["intra_node_gb_per_s_assumed"] = round(throughput.intra_node_bytes_per_s(request.gpu) / 1e9, 1)
    if request.num_nodes > 1:
        assumed["inter_node_gb_per_s_assumed"] = throughput.INTER_NODE_BYTES_PER_S / 1e9
    if request.offload != "none":
        assumed["host_link_gb_per_s_assumed"] = throughput.HOST_LINK_BYTES_PER_S / 1e9
        assumed["host_memory_gb_per_s_assumed"] = throughput.HOST_MEMORY_BYTES_PER_S / 1e9
    return assumed


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 2)
