"""The "what fits" search: the least compromising configuration of a method that fits the device.

The planner calls `best_fit` for its recommendation and its next-best
alternatives. Compromises are tried from the cheapest, each adding to the ones
before: a fused cross-entropy (no quality cost; on from the start where it
saves over a fifth of the peak, kept where it made the step fit), gradient checkpointing (slower steps; never
for prefix tuning, which peft refuses to checkpoint), a smaller micro-batch with
gradient accumulation (same effective batch), an 8-bit then a paged 8-bit
optimizer, sharding across the GPUs when there are several (no quality cost;
on several nodes hybrid sharding first, which keeps parameter traffic inside
the node and sends only gradients over the slower links between nodes, then
full FSDP, whose every parameter crosses those links each micro-batch, then
ZeRO-3; a 4-bit base by FSDP only, as FSDP-QLoRA), CPU offload of the
optimizer states, then of the parameters too (slower steps, no quality cost;
an offload fits only where the node's CPU memory, assumed twice its devices',
holds what is offloaded; on several nodes hybrid sharding with its shards
offloaded after full sharding's), and last shorter sequences (a quality
trade-off: longer examples get cut). Offload needs a sharding engine, so one
device is never offered it (`advisor execute` runs a one-device plan in its
own process).
Once a configuration fits, the compromises made before the one that made it
fit are undone where it still fits without them (sharding often makes the
8-bit optimizer, checkpointing and a small micro-batch unnecessary). Where full
sharding fits several nodes, hybrid sharding with its shards offloaded may fit
as well: the faster of the two by the time estimate is kept, and the other is
the fit's `layout_alternative`, with both speeds at the assumed network between
the nodes and at a faster one, since that assumption decides between them.
`smallest_tried` is the least memory the search reached, for "needs X GiB" when
nothing fits.

The search's own results (FitResult, LayoutAlternative) are NamedTuples: built by this code from validated
requests, they need no validation, and their pydantic classes cost a cold plan 8 M instructions to build.
"""

import math
from typing import Iterator, NamedTuple, Optional

from ..models import Estimate
from . import EstimateRequest
from .estimator import MemoryFit, estimate, memory_fit, tokens_per_second
from . import throughput
from .sharding import ENGINE_NAMES, OFFLOAD_NAMES, OFFLOADS, hardware_label, world_size

#: Shortest sequence the search proposes.
MIN_SEQ_LEN = 128
SHARDINGS = ("hybrid", "fsdp", "zero3")
#: The shardings a 4-bit base can use: FSDP with bnb_4bit_quant_storage set to the compute dtype (FSDP-QLoRA).
QUANTIZED_SHARDINGS = ("hybrid", "fsdp")
#: ASSUMPTION (the profile does not give it): CPU memory a node has for offloaded shards, as a multiple of its
#: devices' memory. Training servers commonly carry twice or more (an 8 x H100 80 GB DGX has 2 TB); a workstation
#: with 4 x 24 GB cards often has 128-256 GB.
HOST_MEMORY_PER_DEVICE_MEMORY = 2.0
OFFLOAD_STEPS = (
    ("optimizer", f"{OFFLOAD_NAMES['optimizer']} (slower steps: the optimizer runs on the CPU)"),
    ("parameters", f"{OFFLOAD_NAMES['parameters']} (slower steps: every layer is copied in for the forward "
                   "and the backward pass)"),
)
#: A faster network between nodes than the assumed one, to show how the layout choice turns on it:
#: 400 Gb/s, one InfiniBand NDR port (training clusters often have one per GPU, more still).
FAST_INTER_NODE_BYTES_PER_S = 400e9 / 8
OPTIMIZERS = (
    ("adamw_8bit", "8-bit AdamW (bitsandbytes) instead of AdamW"),
    ("paged_adamw_8bit", "paged 8-bit AdamW: optimizer states can spill to host memory"),
)


class LayoutAlternative(NamedTuple):
    """The other way the model state fits several nodes, and the speeds the choice between them turned on."""

    sharding: str
    offload: str
    optimizer: str
    peak_gib: float
    offloaded_gib_per_node: float
    tokens_per_s: float  # the alternative's, all devices, at the assumed network between nodes
    chosen_tokens_per_s: float
    inter_node_gb_per_s_assumed: float
    fast_inter_node_gb_per_s: float
    tokens_per_s_fast: float  # the alternative's at the faster network
    chosen_tokens_per_s_fast: float


class FitResult(NamedTuple):
    """A configuration that fits, and what was given up to get there."""

    request: EstimateRequest
    estimate: Estimate
    gradient_accumulation_steps: int
    changes: list[str]  # what differs from the request, for a person
    layout_alternative: Optional[LayoutAlternative] = None


def best_fit(request: EstimateRequest, effective_batch: Optional[int] = None) -> Optional[FitResult]:
    """The first fitting configuration in order of compromise; None if even the last does not fit.

    With no device memory known, nothing can be checked: the request comes back as it is.
    """
    effective = effective_batch or request.batch_size * request.gradient_accumulation_steps
    for candidate, notes in _candidates(request, effective):
        fit = memory_fit(candidate)
        if fit.fits is None or fit.fits:
            chosen, notes, other = _faster_layout(candidate, notes, request)
            result = estimate(chosen)
            if other is not None:
                result = result.model_copy(update={"config": {**result.config,
                                                              "layout_alternative": other._asdict()}})
            batch: dict[str, str] = {}
            _note_batch(batch, request, chosen)  # the micro-batch after relaxing, not before
            return FitResult(
                request=chosen, estimate=result,
                gradient_accumulation_steps=chosen.gradient_accumulation_steps,
                changes=[note for note in notes.values() if not note.startswith("micro-batch")
                         and _still_made(note, chosen, request)] + list(batch.values()),
                layout_alternative=other,
            )
    return None


def _faster_layout(fitting: EstimateRequest, notes: dict[str, str], asked: EstimateRequest,
                   ) -> tuple[EstimateRequest, dict[str, str], Optional[LayoutAlternative]]:
    """`fitting` relaxed, or on several nodes, where it is fully sharded, hybrid sharding with its shards
    offloaded instead when that fits and is faster by the time estimate; with the layout not taken.

    Full sharding sends every parameter over the network between nodes twice a micro-batch; hybrid keeps that
    inside the node but copies its shards over PCIe and steps the optimizer on the CPU. Which is faster turns
    on the network, which the plan does not know: both speeds are kept, at the assumed and at a faster one.
    """
    relaxed = _relax(fitting, asked)
    if fitting.num_nodes <= 1 or fitting.sharding not in ("fsdp", "zero3") or fitting.gpu is None \
            or not _can_shard(fitting, "hybrid"):
        return relaxed, notes, None
    rival = fitting.model_copy(update={"sharding": "hybrid", "offload": "parameters"})
    if not _fits(rival):
        return relaxed, notes, None
    rival = _relax(rival, asked)
    full, hybrid = ((tokens_per_second(layout, throughput.INTER_NODE_BYTES_PER_S),
                     tokens_per_second(layout, FAST_INTER_NODE_BYTES_PER_S)) for layout in (relaxed, rival))
    if None in full + hybrid:
        return relaxed, notes, None
    (chosen, speed), (other, other_speed) = sorted(((relaxed, full), (rival, hybrid)), key=lambda pair: -pair[1][0])
    if chosen is rival:
        notes = {**notes, "sharding": _sharding_note(rival), "offload": dict(OFFLOAD_STEPS)["parameters"]}
    other_fit = memory_fit(other)
    return chosen, notes, LayoutAlternative(
        sharding=other.sharding, offload=other.offload, optimizer=other.optimizer,
        peak_gib=other_fit.peak_gib, offloaded_gib_per_node=other_fit.offloaded_gib_per_node,
        tokens_per_s=round(other_speed[0], 1), chosen_tokens_per_s=round(speed[0], 1),
        inter_node_gb_per_s_assumed=throughput.INTER_NODE_BYTES_PER_S / 1e9,
        fast_inter_node_gb_per_s=FAST_INTER_NODE_BYTES_PER_S / 1e9,
        tokens_per_s_fast=round(other_speed[1], 1), chosen_tokens_per_s_fast=round(speed[1], 1),
    )


def smallest_tried(request: EstimateRequest, effective_batch: Optional[int] = None) -> Estimate:
    """The estimate of the search's most compromised configuration (the least memory it reached)."""
    effective = effective_batch or request.batch_size * request.gradient_accumulation_steps
    last = request
    for last, _ in _candidates(request, effective):
        pass
    return estimate(last)


def _relax(fitting: EstimateRequest, asked: EstimateRequest) -> EstimateRequest:
    """Undo the optimizer, checkpointing and micro-batch compromises where the configuration still fits
    without them at the whole sequence length (once sequences are cut, memory goes to length first)."""
    if fitting.seq_len < asked.seq_len:
        return fitting
    for field in ("optimizer", "gradient_checkpointing"):
        value = getattr(asked, field)
        if getattr(fitting, field) == value:
            continue
        trial = fitting.model_copy(update={field: value})
        if _fits(trial):
            fitting = trial
    effective = fitting.batch_size * fitting.gradient_accumulation_steps
    while fitting.batch_size * 2 <= min(asked.batch_size, effective):
        trial = _with_batch(fitting, fitting.batch_size * 2, effective)
        if not _fits(trial):
            break
        fitting = trial
    if fitting.fused_cross_entropy and not asked.fused_cross_entropy:  # kept where it fits or saves enough
        trial = fitting.model_copy(update={"fused_cross_entropy": False})
        if memory_fit(trial).fits and not _fused_loss_saves_enough(trial, fitting):
            fitting = trial
    return fitting


def _fits(request: EstimateRequest) -> bool:
    fit = memory_fit(request)
    return bool(fit.fits) and _host_holds(request, fit)


def _host_holds(request: EstimateRequest, fit: MemoryFit) -> bool:
    """What is offloaded fits the node's CPU memory, assumed HOST_MEMORY_PER_DEVICE_MEMORY times its devices'."""
    host_memory_gib = HOST_MEMORY_PER_DEVICE_MEMORY * (fit.device_memory_gib or 0.0) * request.num_gpus
    return fit.offloaded_gib_per_node <= host_memory_gib


def _still_made(note: str, fitting: EstimateRequest, asked: EstimateRequest) -> bool:
    if note.startswith(tuple(why for _, why in OPTIMIZERS)):
        return fitting.optimizer != asked.optimizer
    if note == FUSED_LOSS_NOTE:
        return fitting.fused_cross_entropy != asked.fused_cross_entropy
    if note.startswith("gradient checkpointing"):
        return fitting.gradient_checkpointing != asked.gradient_checkpointing
    return True


#: The share of the peak a fused loss must save to be turned on in a configuration that fits without it.
FUSED_LOSS_SAVING = 0.20
FUSED_LOSS_NOTE = "fused cross-entropy on: the logits are never held in full (no quality cost)"


def _fused_loss(request: EstimateRequest) -> Optional[EstimateRequest]:
    """The request with a fused LM loss, where the plan's own Trainer computes a causal LM's loss (preference
    pairs take TRL's loss); None where it does not apply or is on already."""
    if request.fused_cross_entropy or request.head != "lm" or request.architecture.kind != "decoder" \
            or request.footprint.sequences_per_example > 1:
        return None
    return request.model_copy(update={"fused_cross_entropy": True})


def _fused_loss_saves_enough(plain: EstimateRequest, fused: EstimateRequest) -> bool:
    return memory_fit(fused).peak_gib < (1 - FUSED_LOSS_SAVING) * memory_fit(plain).peak_gib


def _candidates(request: EstimateRequest, effective: int) -> Iterator[tuple[EstimateRequest, dict[str, str]]]:
    """Configurations in order of compromise, each with what changed (one note per kind of change)."""
    notes: dict[str, str] = {}
    current = _with_batch(request, min(request.batch_size, effective), effective)
    _note_batch(notes, request, current)
    # A fused LM head + loss (no full logits) costs no quality: on from the start where it saves over
    # FUSED_LOSS_SAVING of the peak, else the first compromise (where it may alone make the step fit).
    fused = _fused_loss(current)
    if fused is not None and _fused_loss_saves_enough(current, fused):
        current, notes["fused_loss"] = fused, FUSED_LOSS_NOTE
    yield current, dict(notes)
    if fused is not None and not current.fused_cross_entropy:
        current, notes["fused_loss"] = current.model_copy(update={"fused_cross_entropy": True}), FUSED_LOSS_NOTE
        yield current, dict(notes)
    if not (current.gradient_checkpointing or current.footprint.forces_gradient_checkpointing or _prefix(current)):
        current = current.model_copy(update={"gradient_checkpointing": True})
        notes["checkpointing"] = "gradient checkpointing on (about a third slower per step)"
        yield current, dict(notes)
    while current.batch_size > 1:
        current = _with_batch(current, current.batch_size // 2, effective)
        _note_batch(notes, request, current)
        yield current, dict(notes)
    if current.footprint.trainable_params and _runs_bitsandbytes(current):
        for optimizer, why in OPTIMIZERS:
            if current.optimizer not in (optimizer, "paged_adamw_8bit"):
                current = current.model_copy(update={"optimizer": optimizer})
                notes["optimizer"] = why
                yield current, dict(notes)
    if world_size(current.num_gpus, current.num_nodes) > 1 and current.sharding in ("none", "ddp", "zero2"):
        for sharding in SHARDINGS:
            if _can_shard(current, sharding):
                current = current.model_copy(update={"sharding": sharding})
                notes["sharding"] = _sharding_note(current)
                yield current, dict(notes)
    sharded = current
    for current, changes in _offloads(current, notes, tuple(offload for offload, _ in OFFLOAD_STEPS)):
        yield current, changes
    if sharded.num_nodes > 1 and sharded.sharding != "hybrid" and _can_shard(sharded, "hybrid"):
        # Hybrid's shards offloaded: its parameter traffic stays inside the node, only gradients cross nodes.
        hybrid = sharded.model_copy(update={"sharding": "hybrid"})
        yield from _offloads(hybrid, {**notes, "sharding": _sharding_note(hybrid)}, ("parameters",))
    while current.seq_len // 2 >= MIN_SEQ_LEN:
        current = current.model_copy(update={"seq_len": current.seq_len // 2})
        notes["seq"] = (
            f"sequence length {request.seq_len} -> {current.seq_len} (quality trade-off: longer examples are truncated)"
        )
        yield current, dict(notes)


def _offloads(request: EstimateRequest, notes: dict[str, str],
              offloads: tuple[str, ...]) -> Iterator[tuple[EstimateRequest, dict[str, str]]]:
    """The offload steps the request's sharding offers, each adding to the one before, while the node's CPU
    memory holds what they offload (each offloads more than the one before)."""
    for offload, why in OFFLOAD_STEPS:
        if offload in offloads and request.sharding in OFFLOADS[offload] and request.offload != offload:
            trial = request.model_copy(update={"offload": offload})
            if not _host_holds(trial, memory_fit(trial)):
                return
            request = trial
            notes["offload"] = why
            yield request, dict(notes)


def _sharding_note(request: EstimateRequest) -> str:
    note = f"{ENGINE_NAMES[request.sharding]} across {hardware_label(request.num_gpus, request.num_nodes)}"
    if request.footprint.quantized_base:
        note += " (FSDP-QLoRA: the 4-bit base stored in the compute dtype, sharded)"
    return note


def _can_shard(request: EstimateRequest, sharding: str) -> bool:
    """Hybrid needs several nodes. A 4-bit base shards under FSDP only, with bitsandbytes' quant_storage in the
    compute dtype (its default uint8 storage fails at run time: peft #1844, axolotl #1240); ZeRO is not proposed."""
    if sharding == "hybrid" and request.num_nodes <= 1:
        return False
    return sharding in QUANTIZED_SHARDINGS or not request.footprint.quantized_base


def _runs_bitsandbytes(request: EstimateRequest) -> bool:
    """8-bit optimizers are bitsandbytes kernels: where the catalog says it runs (an unknown device is assumed to)."""
    return request.gpu is None or (request.gpu.cuda and request.gpu.bitsandbytes)


def _prefix(request: EstimateRequest) -> bool:
    """peft refuses gradient checkpointing with prefix tuning (its past key/values)."""
    return request.footprint.virtual_tokens > 0 and request.footprint.virtual_tokens_in == "kv"


def _with_batch(request: EstimateRequest, batch: int, effective: int) -> EstimateRequest:
    return request.model_copy(update={
        "batch_size": batch, "gradient_accumulation_steps": max(1, math.ceil(effective / batch)),
    })


def _note_batch(notes: dict[str, str], original: EstimateRequest, current: EstimateRequest) -> None:
    if (current.batch_size, current.gradient_accumulation_steps) != (
        original.batch_size, original.gradient_accumulation_steps
    ):
        notes["batch"] = (
            f"micro-batch {original.batch_size} -> {current.batch_size} with "
            f"{current.gradient_accumulation_steps} gradient accumulation steps "
            f"(effective batch {current.batch_size * current.gradient_accumulation_steps})"
        )
