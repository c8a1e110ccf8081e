"""Peak GPU memory of one training step: parameters, gradients, optimizer, activations, logits.

`estimate()` (estimator.py) calls `peak_memory`. The step is walked as a short
timeline, the way the caching allocator sees it under the reference recipe
(../shared/calibration/README.md): the end of the forward pass, the loss
backward (logits + two fp32 gradients of them), each layer's backward from the
top down (its gradients appear while the activations below it are still held;
with gradient checkpointing the layer is recomputed first), the end of the
backward pass (every gradient, plus the tied embedding's two contributions
being summed), and the optimizer step. The peak is the largest of these, and
its parts are the breakdown. Everything is bytes here; GiB at the edge.

Every term is a physical byte count (dtype sizes, tensor shapes, NF4 and
8-bit state layouts) checked on CPU against torch (tests/estimate/); nothing
here is fitted to the GPU measurements, which benchmarks/estimator_accuracy.py
uses only to report how close the model comes. The one coefficient the
measurements cannot pin down (a layer's backward temporaries; no measured
peak falls inside a layer's backward) lives in calibration.py.
"""

from __future__ import annotations

from typing import NamedTuple

from ..architecture import Architecture
from ..methods import Footprint
from . import activations as act
from . import memo
from .calibration import LAYER_BACKWARD_TEMPORARIES
from .sharding import accumulated_gradients, shard

GIB = 2**30
#: NF4 with double quantisation: 4 bits per weight, an 8-bit absmax per 64 weights, fp32 per 256 absmax blocks.
NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)
#: bitsandbytes 8-bit Adam: one byte per state element plus an fp32 absmax per 256-element block, two states.
ADAM_8BIT_BYTES_PER_PARAM = 2 * (1 + 4 / 256)


class Shape(NamedTuple):
    """The training step being estimated (one device's view)."""

    precision: str
    batch: int
    seq: int
    gradient_checkpointing: bool
    optimizer: str
    head: str
    num_labels: int
    accumulation_steps: int = 1
    sharding: str = "none"
    devices: int = 1  # per node
    nodes: int = 1
    offload: str = "none"
    fused_loss: bool = False  # the LM head and loss run without the full logits (activations.LogitsBytes)
    adamw_implementation: str = "fused"  # torch AdamW's kernel: "fused" or "foreach" (see optimizer_step_temporaries)
    # A 16-bit recipe on an fp16 frozen base: the base weights that train (freeze's top layers) are fp32, with
    # fp32 gradients and AdamW states, and fp16 autocast copies of their matrices (advisor.precision).
    trained_base_fp32: bool = False


class Parameters(NamedTuple):
    """Parameter and state bytes of the model as the method trains it."""

    weights: float  # base weights as stored (bf16/fp32, or NF4 for quantised linears)
    upcast: float  # non-quantised base parameters upcast to fp32 by prepare_model_for_kbit_training
    adapters: float  # parameters the method adds (fp32)
    gradients: float
    optimizer: float
    layer_gradients: float  # the part of `gradients` produced by one trained layer
    head_gradients: float  # lm_head/final norm gradients, produced first in the backward pass
    tied_embedding_gradient: float  # the tied embedding/lm_head matrix's gradient (0 if not trained or untied)
    autocast_copies: float  # bf16 copies of the trained linears torch.autocast keeps for the backward pass
    head_copy: float  # the part of `autocast_copies` that is the lm_head's matrix

    @property
    def resident(self) -> float:
        return self.weights + self.upcast + self.adapters


def base_param_bytes(precision: str) -> int:
    """Bytes per base parameter: fp32 master weights under mixed precision and fp32, else 16-bit."""
    return 4 if precision in ("mixed", "fp32") else 2


def quantized_params(arch: Architecture) -> int:
    """The weights bitsandbytes stores in 4 bits: every layer nn.Linear's matrix (biases, norms, embeddings, a MoE
    model's router and 3D expert weights stay in 16 bits)."""
    return arch.matmul_params(modules_only=True)


def parameters(arch: Architecture, fp: Footprint, shape: Shape) -> Parameters:
    total = arch.total_params()
    pb = base_param_bytes(shape.precision)
    base_trainable = max(fp.trainable_params - fp.added_params, 0)
    trained_pb = 4 if shape.trained_base_fp32 else pb  # bytes of a trained base weight and of its gradient
    if fp.quantized_base:
        quantized = quantized_params(arch)
        rest = total - quantized
        weights = quantized * NF4_BYTES_PER_PARAM + (0 if fp.upcast_unquantized_fp32 else rest * 2)
        upcast = rest * 4 if fp.upcast_unquantized_fp32 else 0.0
    else:
        weights, upcast = (total - base_trainable) * pb + base_trainable * trained_pb, 0.0
    if fp.reference_copy:
        weights += total * pb  # a frozen copy scores the reference (full-parameter DPO)
    adapters = fp.added_params * act.ADAPTER_BYTES
    gradients = base_trainable * trained_pb + fp.added_params * act.ADAPTER_BYTES
    optimizer = _optimizer_bytes(shape.optimizer, fp.trainable_params, gradients)
    full = trains_embeddings(arch, fp)
    layers_trained = trained_layers(arch, fp)
    head = (arch.head_params() if full else 0) * trained_pb
    tied = arch.vocab_size * arch.hidden_size * trained_pb if (full and arch.tied_embeddings) else 0.0
    embeddings = (arch.embedding_params() if full else 0) * trained_pb
    per_layer = (gradients - head - embeddings) / layers_trained if layers_trained else 0.0
    copies = head_copy = 0.0
    if shape.precision == "mixed" and base_trainable:
        head_copy = 2 * arch.vocab_size * arch.hidden_size
        copies = 2 * arch.top_layers_params(layers_trained, matrices_only=True) + head_copy
    elif shape.trained_base_fp32 and base_trainable:  # the lm_head is frozen fp16 here: no copy of it
        copies = 2 * arch.top_layers_params(layers_trained, matrices_only=True)
    return Parameters(
        weights=weights, upcast=upcast, adapters=adapters, gradients=gradients, optimizer=optimizer,
        layer_gradients=per_layer, head_gradients=head + tied, tied_embedding_gradient=tied,
        autocast_copies=copies, head_copy=head_copy,
    )


def _optimizer_bytes(optimizer: str, trainable: int, gradient_bytes: float) -> float:
    """AdamW keeps two states per trainable parameter in its dtype; the 8-bit ones one byte each.

    A paged optimizer's states live in CUDA unified memory, outside the caching
    allocator (not in max_memory_allocated) and evictable to the host: 0 here.
    """
    if optimizer == "adamw":
        return 2 * gradient_bytes
    if optimizer == "adamw_8bit":
        return trainable * ADAM_8BIT_BYTES_PER_PARAM
    return 0.0


def optimizer_step_temporaries(shape: Shape, params: Parameters) -> float:
    """What torch's AdamW allocates during `step()` on top of the states (per device, after sharding).

    fused (`adamw_torch_fused`: what `advisor execute` asks the Trainer for, and
    the Trainer's own default since torch 2.8) updates in place: nothing.
    foreach (torch.optim.AdamW's default on CUDA, e.g. a hand-written loop)
    materialises sqrt(exp_avg_sq) for every parameter of a param group at once
    (torch/optim/adam.py `_multi_tensor_adam`: `torch._foreach_sqrt(device_exp_avg_sqs)`):
    one more copy of the second moment, i.e. the gradients' bytes (states are in
    the parameter's dtype). Measured on CPU in tests/estimate/test_optimizer_step.py.
    The Trainer's decay/no-decay groups step one after the other, so the no-decay
    group's norms and biases (under 0.01% of a model) are counted too: a bound.
    DeepSpeed (zero2/zero3) steps with its own in-place kernel: nothing either.
    """
    if shape.optimizer != "adamw" or shape.adamw_implementation != "foreach" or shape.sharding in ("zero2", "zero3"):
        return 0.0
    return params.optimizer / 2


def trains_base_weights(arch: Architecture, fp: Footprint) -> bool:
    """Base weights train (full, freeze), rather than only added parameters (LoRA, prompts)."""
    base_trainable = fp.trainable_params - fp.added_params
    return base_trainable > 0 and base_trainable * 2 >= arch.top_layers_params(trained_layers(arch, fp))


def trained_layers(arch: Architecture, fp: Footprint) -> int:
    """Layers whose parameters (own or adapters) train: the top `backward_layers`, else all."""
    return arch.num_layers if fp.backward_layers is None else min(fp.backward_layers, arch.num_layers)


def trains_embeddings(arch: Architecture, fp: Footprint) -> bool:
    """Every base parameter trains (full fine-tuning), embeddings and head included."""
    return fp.backward_layers is None and fp.trainable_params - fp.added_params >= arch.total_params()


def tokens(arch: Architecture, fp: Footprint, shape: Shape) -> act.Tokens:
    """The sequence lengths the model sees: a prompt lengthens the queries, a prefix the keys/values."""
    extra_q = fp.virtual_tokens if fp.virtual_tokens_in == "sequence" else 0
    extra_kv = fp.virtual_tokens if fp.virtual_tokens_in == "kv" else 0
    seq = shape.seq + extra_q
    checkpointing = shape.gradient_checkpointing or fp.forces_gradient_checkpointing
    return act.Tokens(batch=shape.batch, seq=seq, kv_seq=seq + extra_kv, use_cache=not checkpointing)


def embeddings_output_grad(arch: Architecture, fp: Footprint, checkpointing: bool) -> bool:
    """The embedding output requires grad: trained embeddings, a prompt in the sequence, or checkpointing.

    transformers' gradient_checkpointing_enable calls enable_input_require_grads,
    so with checkpointing every layer's input needs a gradient, even under freeze.
    """
    return trains_embeddings(arch, fp) or prompt_in_sequence(fp) or checkpointing


@memo.by_footprint  # the fit search asks again for every configuration it tries: a third of its estimates' time
def layer_grads(arch: Architecture, fp: Footprint, checkpointing: bool = False) -> list[act.LayerGrads]:
    """What each layer (bottom first) contributes to the backward pass under this method."""
    weights = trains_base_weights(arch, fp)
    first_trained = arch.num_layers - trained_layers(arch, fp)
    adapted = arch.linears_named(fp.adapted_linears)
    input_grad_from_start = embeddings_output_grad(arch, fp, checkpointing)
    grads = []
    for index in range(arch.num_layers):
        trained = index >= first_trained
        has_adapters = bool(adapted) and (fp.adapter_rank > 0 or fp.adapter_kind == "ia3") and trained
        prefix = fp.virtual_tokens_in == "kv" and fp.virtual_tokens > 0
        below_trainable = index > first_trained and (weights or has_adapters or prefix)
        grads.append(act.LayerGrads(
            weights=weights and trained,
            input=bool(input_grad_from_start) or below_trainable,
            adapted=adapted if has_adapters else (),
            rank=fp.adapter_rank,
            kv_grad=prefix,
            kind=fp.adapter_kind,
            dropout=fp.adapter_dropout > 0 or fp.adapter_kind == "bottleneck",
            input_scaled=tuple(fp.input_scaled_linears),
            dense_mlp=index < arch.dense_layers,
            experts=tuple(fp.adapted_experts.items()) if has_adapters else (),
        ))
    return grads


class Peak(NamedTuple):
    """The largest moment of the step and what it is made of (bytes per part)."""

    phase: str
    parts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.parts.values())


class ForwardState(NamedTuple):
    """What the forward pass leaves alive (bytes), per layer and outside the layers."""

    own: list[float]  # each layer's saved tensors (what it keeps without checkpointing, or recomputes with it)
    held: list[float]  # what each layer holds until its backward: `own`, or its checkpointed input
    cache: float  # the DynamicCache of all layers, held by the model output
    cache_saved: float  # the part of it SDPA saved for backward (its k/v in layers that backpropagate)
    outside: float  # embedding side, final norm, head input
    logits: act.LogitsBytes
    checkpointing: bool

    @property
    def saved_for_backward(self) -> float:
        """What autograd holds for backward (saved_tensors_hooks' view): no outputs, no checkpoint frames."""
        return sum(self.own) + self.cache_saved + self.outside + self.logits.kept - self.logits.output

    @property
    def alive(self) -> float:
        """Every byte the forward pass leaves allocated: saved tensors, checkpoints, outputs, cache."""
        return sum(self.held) + self.cache + self.outside + self.logits.kept


def forward_state(arch: Architecture, fp: Footprint, shape: Shape, kernel: act.Kernel = "cuda") -> ForwardState:
    numerics = act.Numerics.of(shape.precision, fp.upcast_unquantized_fp32)
    tok = tokens(arch, fp, shape)
    checkpointing = not tok.use_cache
    grads = layer_grads(arch, fp, checkpointing)
    own = [act.layer_bytes(arch, numerics, tok, g, kernel) for g in grads]
    embeddings = trains_embeddings(arch, fp)
    layer_cache = act.kv_cache_bytes(arch, numerics, tok)
    backpropagating = sum(g.active for g in grads)
    return ForwardState(
        own=own,
        held=[act.checkpoint_bytes(arch, numerics, tok)] * arch.num_layers if checkpointing else own,
        cache=arch.num_layers * layer_cache,
        cache_saved=backpropagating * layer_cache if act.cache_is_saved(arch, tok) else 0.0,
        outside=act.outside_layers(
            arch, numerics, tok, embeddings_grad=embeddings_output_grad(arch, fp, checkpointing),
            input_leaf=checkpointing and not embeddings and (arch.learned_positions or prompt_in_sequence(fp)),
            stream_grad=any(g.active for g in grads), head_trained=embeddings, head=shape.head, kernel=kernel,
        ).total,
        logits=act.LogitsBytes.of(arch, numerics, tok, shape.head, shape.num_labels, shape.fused_loss, embeddings),
        checkpointing=checkpointing,
    )


def peak_memory(arch: Architecture, fp: Footprint, shape: Shape, kernel: act.Kernel = "cuda") -> Peak:
    """Walk the step's timeline and return its largest moment, per device."""
    whole = parameters(arch, fp, shape)
    params, buffers = shard(
        whole, arch, fp, shape.sharding, shape.devices, base_param_bytes(shape.precision),
        shape.optimizer, autocast=shape.precision == "mixed", nodes=shape.nodes, offload=shape.offload,
    )
    state = forward_state(arch, fp, shape, kernel)
    grads = layer_grads(arch, fp, state.checkpointing)
    logits = state.logits
    accumulating = accumulated_gradients(whole, params, shape.sharding) if shape.accumulation_steps > 1 else 0.0
    # Under checkpointing autocast's bf16 weight copies are remade per layer; only the lm_head's stays.
    copies_held = min(params.autocast_copies, params.head_copy) if state.checkpointing else params.autocast_copies

    def moment(phase: str, **parts: float) -> Peak:
        merged = {
            "weights": params.weights, "weights_fp32_upcast": params.upcast, "adapter_weights": params.adapters,
            "optimizer": params.optimizer, "kv_cache": state.cache, "communication_buffers": buffers, **parts,
        }
        return Peak(phase, {name: value for name, value in merged.items() if value})

    moments = [moment(
        "loss backward", gradients=accumulating, activations=sum(state.held) + state.outside,
        logits_loss=logits.kept + logits.backward_extra, autocast_copies=copies_held,
    )]
    def backward_layer(index: int, below: float, produced: float) -> dict[str, float]:
        # The layer's own tensors are alive (recomputed from its checkpoint, which is still held).
        current = state.own[index] + (state.held[index] if state.checkpointing else 0.0)
        return {
            "gradients": max(accumulating, produced),
            "activations": below + current,
            "backward_temporaries": LAYER_BACKWARD_TEMPORARIES * state.own[index],
            "logits_loss": logits.output,
            "autocast_copies": copies_held if state.checkpointing else params.autocast_copies * index / arch.num_layers,
        }

    # Every layer's moment is summed, only the largest one itemised (the fit search walks this timeline for
    # each configuration it tries: itemising all of them cost 36 M of the 1,286 M instructions of a cold 8B plan).
    produced, below, largest = params.head_gradients, sum(state.held), None
    for index in reversed(range(arch.num_layers)):
        below -= state.held[index]
        total = sum(backward_layer(index, below, produced).values())
        if largest is None or total > largest[0]:
            largest = (total, index, below, produced)
        if grads[index].weights or grads[index].adapted:
            produced += params.layer_gradients
    if largest is not None:
        _, index, below, produced = largest
        moments.append(moment(f"backward layer {index}", **backward_layer(index, below, produced)))
    moments.append(moment(
        "end of backward", gradients=params.gradients, logits_loss=logits.output,
        backward_temporaries=_tied_embedding_sum(params, shape),
    ))
    moments.append(moment("optimizer step", gradients=params.gradients, kv_cache=0.0,
                          optimizer_temporaries=optimizer_step_temporaries(shape, params)))
    return max(moments, key=lambda peak: peak.total)


def prompt_in_sequence(fp: Footprint) -> bool:
    return bool(fp.virtual_tokens) and fp.virtual_tokens_in == "sequence"


def _tied_embedding_sum(params: Parameters, shape: Shape) -> float:
    """The tied embedding gets two gradients (lm_head, embedding lookup) that autograd sums at the end.

    The lm_head's arrives through a transpose (a view), so the sum is out of
    place: three copies live at once, one of which is the final gradient. Under
    autocast it arrives as a fresh fp32 cast, summed in place, while the bf16
    copy of the matrix is still held.
    """
    if not params.tied_embedding_gradient:
        return 0.0
    if shape.precision == "mixed":
        return params.tied_embedding_gradient + params.tied_embedding_gradient / 2
    return 2 * params.tied_embedding_gradient
