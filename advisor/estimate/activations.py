"""Bytes autograd keeps between the forward and the backward pass, op by op.

memory.py asks here how much one transformer layer saves for its backward
(and what a gradient-checkpointed layer keeps instead), what lives outside
the layers (embedding dropout, final norm, lm_head input), and the logits and
loss tensors. Each figure is the sum of the tensors the Hugging Face modules
(transformers 5, peft 0.21) hand to autograd, written out per operation so a
test can compare it with the tensors `torch.autograd.graph.saved_tensors_hooks`
sees on a tiny model on CPU (tests/estimate/test_activations.py).

Two kernels differ between CPU and CUDA and are selected by `kernel`: a
dropout mask is a bool (1 byte) from CUDA's fused dropout, but a tensor of the
input's dtype on CPU; LayerNorm statistics are fp32 on CUDA. Attention is
SDPA with a flash/memory-efficient kernel on both (saved: q, k, v, output,
log-sum-exp; attention dropout keeps only an RNG state on CUDA).
"""

from __future__ import annotations

import functools
import math

from typing import Literal, NamedTuple

from ..architecture import MLA, Architecture, LinearSpec

Kernel = Literal["cuda", "cpu"]
#: Families whose default configs use hidden-state dropout (GPT-2 resid/embd 0.1, BERT-style encoders hidden
#: 0.1); the llama-like decoders have none. Attention dropout costs no saved tensor on CUDA (see above).
HIDDEN_DROPOUT = ("gpt2", "bert", "roberta", "xlm-roberta")
#: Linears reading something other than the layer input: outputs of attention, MLA's latent up-projections.
ATTENTION_OUTPUTS = ("o_proj", "c_proj", "dense")
READS_INNER = ATTENTION_OUTPUTS + ("q_b_proj", "kv_b_proj")
#: MoE families whose experts run through transformers' grouped_mm dispatch (priced in `_routed_experts`).
GROUPED_EXPERTS = ("mixtral", "qwen3_moe", "gpt_oss", "deepseek_v2", "deepseek_v3")
#: peft keeps adapter weights in fp32 (get_peft_model's autocast_adapter_dtype), so their inputs are cast to fp32.
ADAPTER_BYTES = 4


#: The estimator's records are NamedTuples, not frozen dataclasses: a frozen dataclass compiles six methods when
#: its module loads (measured: 1.56 ms a class against 0.18 ms for a NamedTuple, on every cold `advisor plan`).
class Numerics(NamedTuple):
    """The dtypes (in bytes) of the tensors one precision recipe produces."""

    residual: int  # the hidden stream between layers, and norm outputs
    compute: int  # projection outputs, attention, MLP intermediates
    logits: int  # the lm_head output
    autocast: bool = False  # torch.autocast: every linear casts its input to a bf16 copy

    @classmethod
    def of(cls, precision: str, upcast_fp32: bool) -> "Numerics":
        """bf16/fp16: everything 16-bit; fp32; mixed: fp32 stream, bf16 matmuls; k-bit upcast: fp32 stream."""
        if precision == "fp32" or upcast_fp32:
            # prepare_model_for_kbit_training: fp32 embeddings/norms, 4-bit linears cast outputs back to fp32.
            return cls(residual=4, compute=4, logits=4)
        if precision == "mixed":
            return cls(residual=4, compute=2, logits=2, autocast=True)
        return cls(residual=2, compute=2, logits=2)


class LayerGrads(NamedTuple):
    """What in one layer takes part in the backward pass."""

    weights: bool  # the layer's own weights are trained (full, freeze)
    input: bool  # the layer's input requires grad (something trainable below it)
    adapted: tuple[LinearSpec, ...] = ()  # linears carrying an adapter (LoRA, DoRA, IA3, bottleneck)
    rank: int = 0
    kv_grad: bool = False  # prefix tuning: trained keys/values enter attention
    kind: str = "lora"  # Footprint.adapter_kind
    dropout: bool = True  # the adapters apply dropout (p > 0) to their input
    input_scaled: tuple[str, ...] = ()  # IA3: linears whose input is rescaled (peft's feed-forward modules)
    dense_mlp: bool = False  # a MoE model's dense layer (DeepSeek's first_k_dense_replace)
    experts: tuple[tuple[str, int], ...] = ()  # LoRA on the 3D expert weights: (name, rank of each expert's update)

    @property
    def active(self) -> bool:
        return self.weights or self.input or bool(self.adapted) or self.kv_grad


class Tokens(NamedTuple):
    """The shape one forward pass sees."""

    batch: int
    seq: int  # query positions (prompt tuning adds its virtual tokens here)
    kv_seq: int  # key/value positions (prefix tuning adds its virtual tokens here)
    use_cache: bool  # transformers builds a DynamicCache (K/V copies) unless checkpointing

    @property
    def count(self) -> int:
        return self.batch * self.seq


class Ledger:
    """Named byte counts; one part per module kind so the totals can be explained."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}

    def add(self, part: str, nbytes: float) -> None:
        if nbytes:
            self.parts[part] = self.parts.get(part, 0.0) + nbytes

    @property
    def total(self) -> float:
        return sum(self.parts.values())


def _mask(kernel: Kernel, input_bytes: int) -> int:
    return 1 if kernel == "cuda" else input_bytes


def _norm(ledger: Ledger, arch: Architecture, n: Numerics, t: int, input_grad: bool, weight_grad: bool,
          kernel: Kernel):
    """RMSNorm (transformers: fp32 copy, rsqrt, weight * x.to(dtype)) or LayerNorm (input + mean/rstd).

    RMSNorm keeps its fp32 input and rsqrt only for the input's gradient, and the
    normalised tensor only for the weight's (Gemma's norm multiplies in fp32:
    an fp32 normalised tensor); LayerNorm's fused kernel keeps all three.
    """
    if not (input_grad or weight_grad):
        return
    h = arch.hidden_size
    if arch.uses_rmsnorm:
        if input_grad:
            ledger.add("norms", t * (4 * h + 4))
        if weight_grad:
            ledger.add("norms", t * h * _normalised_bytes(arch, n))
    else:
        stats = 8 if kernel == "cuda" else 2 * n.residual
        ledger.add("norms", t * (h * n.residual + stats))


def _normalised_bytes(arch: Architecture, n: Numerics) -> int:
    return 4 if arch.family in ("gemma2", "gemma3", "gpt_oss") else n.residual


def _linear_inputs(ledger: Ledger, n: Numerics, t: int, width: int, consumers: int, part: str):
    """Inputs a trained linear saves: shared once, or one bf16 copy per linear under autocast."""
    if n.autocast:
        ledger.add(part, consumers * t * width * 2)
    else:
        ledger.add(part, t * width * n.residual)


def _adapters(ledger: Ledger, arch: Architecture, n: Numerics, grads: LayerGrads, t: int, kernel: Kernel):
    """What each adapted linear keeps: LoRA/bottleneck, DoRA's magnitude path, or IA3's rescaling.

    peft LoRA: lora_A keeps its input cast to fp32 (after dropout), lora_B keeps
    lora_A's output. The dropout mask is kept only where x itself needs a
    gradient: not for the linears reading the layer input when nothing below
    the layer trains; at p=0 peft uses nn.Identity and there is no mask. In fp32
    without dropout the cast is a no-op, so the linears reading one tensor keep
    it once (q/k/v, gate/up), and o_proj's input is the SDPA output already kept.
    """
    c = 2 if n.autocast else n.compute
    shared_inputs = set()
    for linear in grads.adapted:
        if grads.kind == "ia3":
            _ia3(ledger, linear, grads, t, c)
            continue
        source = _input_source(arch, linear)
        x_grad = grads.input or grads.weights or source != "layer input"
        mask = t * linear.in_features * _mask(kernel, ADAPTER_BYTES) if x_grad and grads.dropout else 0
        x_kept = t * linear.in_features * ADAPTER_BYTES
        if n.residual == 4 and not n.autocast and not grads.dropout:
            if source in shared_inputs or source == "attention output":
                x_kept = 0
            shared_inputs.add(source)
        ledger.add("adapters", x_kept + mask + t * grads.rank * ADAPTER_BYTES)
        if grads.kind == "dora":
            _dora(ledger, linear, grads, t, c, weight_copy=x_grad and n.compute == 2 and not n.autocast)


def _input_source(arch: Architecture, linear: LinearSpec) -> str:
    """Which tensor a linear reads, for linears sharing one input (a llama-like layer's four sources)."""
    if linear.role == "attention":
        if linear.name not in READS_INNER:
            return "layer input"
        if linear.name in ATTENTION_OUTPUTS and not (eager_attention(arch) or attention_output_copied(arch)):
            return "attention output"  # SDPA's output, which SDPA keeps (the head merge is a view)
    elif linear.role == "mlp" and linear.in_features == arch.hidden_size:
        return "mlp input"
    return f"{linear.role} {linear.name}"  # its own input (gpt2 and BERT reuse names across roles)


def _dora(ledger: Ledger, linear: LinearSpec, grads: LayerGrads, t: int, c: int, weight_copy: bool):
    """peft DoRA on top of LoRA: the base output and the LoRA output, each multiplied by the magnitude scale,
    are kept, plus the magnitude's scale vectors. With dropout peft recomputes the base output from the
    dropped-out fp32 input, so it is fp32, and that matmul keeps an fp32 copy of a 16-bit weight when the
    input needs a gradient. The low-rank weight DoRA rebuilds every step for the weight norm
    (lora_B(lora_A(eye))) is detached at once, so its graph is freed in the forward pass."""
    base = 4 if grads.dropout else c
    i, o = linear.in_features, linear.out_features
    copy = i * o * 4 if grads.dropout and weight_copy else 0
    ledger.add("adapters", t * o * (base + ADAPTER_BYTES) + 3 * o * 4 + copy)


def _ia3(ledger: Ledger, linear: LinearSpec, grads: LayerGrads, t: int, c: int):
    """peft IA3: an output-scaled linear keeps its output (for the vector's gradient); a feed-forward one
    keeps its input cast to the vector's fp32."""
    if linear.name in grads.input_scaled:
        ledger.add("adapters", t * linear.in_features * ADAPTER_BYTES)
    else:
        ledger.add("adapters", t * linear.out_features * c)


def _attention_core(ledger: Ledger, arch: Architecture, n: Numerics, tok: Tokens, masked: bool, kernel: Kernel):
    """SDPA saves q, k, v, its output (the o_proj input: same storage) and a fp32 log-sum-exp per head.

    With a DynamicCache the k/v SDPA sees are the cache's copies, counted by
    `kv_cache_bytes` because the model output keeps them for every layer, trained
    or not. An explicit mask (prefix tuning) disables SDPA's GQA path, so k/v are
    also expanded to all heads (repeat_kv), and the boolean mask becomes an
    additive bias the memory-efficient kernel saves (last dim padded to 16).
    """
    q_dim = arch.num_heads * arch.dim_per_head
    kv_dim = arch.kv_heads * arch.dim_per_head
    t, t_kv = tok.count, tok.batch * tok.kv_seq
    c = 2 if n.autocast else n.compute
    ledger.add("attention", 2 * t * q_dim * c + t * arch.num_heads * 4)
    if not cached(arch, tok):
        ledger.add("attention", 2 * t_kv * kv_dim * c)
    elif n.autocast:
        ledger.add("attention", t_kv * kv_dim * 2)  # SDPA's bf16 cast of the cache's fp32 keys
    if masked:
        if kv_dim != q_dim:
            ledger.add("attention", 2 * t_kv * q_dim * c)
        ledger.add("attention", t * _mask_width(tok, kernel) * c)


def attention_output_copied(arch: Architecture) -> bool:
    """o_proj reads a contiguous copy of SDPA's output, not a view, where the query was not laid out token-major:
    Phi-3's slice of the fused qkv output, MLA's concatenated query."""
    return arch.family == "phi3" or bool(arch.kv_lora_rank)


def eager_attention(arch: Architecture) -> bool:
    """Gemma 2's soft-capped scores and gpt-oss's attention sinks have no SDPA path: transformers runs them
    eagerly."""
    return arch.attn_logit_softcapping is not None or arch.family == "gpt_oss"


def _eager_attention(ledger: Ledger, arch: Architecture, n: Numerics, tok: Tokens, weights: bool):
    """Eager attention keeps the query, keys and values expanded to every head (repeat_kv), and per
    batch x heads x queries x keys: Gemma 2's tanh of the soft-capped scores, fp32 softmax and its 16-bit
    copy; gpt-oss's softmax over the scores and a sink column.
    Its output is kept only as o_proj's input when o_proj trains."""
    q_dim = arch.num_heads * arch.dim_per_head
    t, t_kv = tok.count, tok.batch * tok.kv_seq
    c = 2 if n.autocast else n.compute
    ledger.add("attention", t * q_dim * c)
    if arch.kv_heads != arch.num_heads or not cached(arch, tok):
        ledger.add("attention", 2 * t_kv * q_dim * c)
    rows = tok.batch * arch.num_heads * tok.seq
    if arch.family == "gpt_oss":
        # A sink column joins the scores; the row max keeps its int64 indices; softmax in the model's dtype.
        ledger.add("attention", rows * ((tok.kv_seq + 1) * c + 8))
    else:
        copy = c if c != 4 else 0  # the softmax's 16-bit copy (in fp32 the cast is a no-op)
        ledger.add("attention", rows * tok.kv_seq * (c + 4 + copy))
    if weights:
        ledger.add("attention", t * q_dim * c)


def _mask_width(tok: Tokens, kernel: Kernel) -> int:
    """Key positions of the additive mask SDPA saves; CUDA's memory-efficient kernel pads them to 16."""
    return -(-tok.kv_seq // 16) * 16 if kernel == "cuda" else tok.kv_seq


def cached(arch: Architecture, tok: Tokens) -> bool:
    """A decoder builds a DynamicCache without checkpointing (use_cache), and always with a prefix."""
    return arch.kind == "decoder" and (tok.use_cache or tok.kv_seq != tok.seq)


def cache_is_saved(arch: Architecture, tok: Tokens) -> bool:
    """SDPA saves the cache's k/v themselves, unless repeat_kv expanded them (masked attention with GQA)."""
    if arch.kv_lora_rank:
        return False  # MLA caches latents; SDPA sees keys/values expanded from them
    expanded = tok.kv_seq != tok.seq or eager_attention(arch)
    return cached(arch, tok) and (not expanded or arch.kv_heads == arch.num_heads)


def kv_cache_bytes(arch: Architecture, n: Numerics, tok: Tokens) -> float:
    """One layer's K/V in the DynamicCache the model output holds until the step ends (0 when checkpointing).

    Under autocast the rotary keys are fp32 (the cos/sin tables follow the fp32 stream).
    """
    if not cached(arch, tok):
        return 0.0
    t_kv = tok.batch * tok.kv_seq
    if arch.kv_lora_rank:  # MLA caches its compressed latent and the shared rotated key
        return t_kv * (arch.kv_lora_rank + arch.qk_rope_head_dim) * n.compute
    kv_dim = arch.kv_heads * arch.dim_per_head
    if n.autocast:
        return t_kv * kv_dim * (2 + (2 if arch.family == "gpt2" else 4))
    return 2 * t_kv * kv_dim * n.compute


def decoder_layer(arch: Architecture, n: Numerics, tok: Tokens, grads: LayerGrads, kernel: Kernel = "cuda") -> Ledger:
    """Bytes one decoder layer (llama/qwen2/mistral or gpt2) keeps for its backward pass."""
    ledger = Ledger()
    if not grads.active:
        return ledger
    if arch.family == "gpt2":
        _gpt2_layer(ledger, arch, n, tok, grads, kernel)
    else:
        _llama_layer(ledger, arch, n, tok, grads, kernel)
    _adapters(ledger, arch, n, grads, tok.count, kernel)
    return ledger


def _llama_layer(ledger: Ledger, arch: Architecture, n: Numerics, tok: Tokens, grads: LayerGrads, kernel: Kernel):
    """llama/qwen2/mistral op by op; the later families' extra ops through `_family_extras` (see there)."""
    t, h, f = tok.count, arch.hidden_size, arch.mlp_width
    w = grads.weights
    _norm(ledger, arch, n, t, grads.input, w, kernel)
    if arch.kv_lora_rank:
        _mla_attention(ledger, arch, n, t, w)
    else:
        if w:
            _linear_inputs(ledger, n, t, h, 3, "attention")  # q/k/v input
        if eager_attention(arch):
            _eager_attention(ledger, arch, n, tok, w)
        else:
            # A prefix makes transformers pass an explicit mask: SDPA then needs repeat_kv (no enable_gqa).
            _attention_core(ledger, arch, n, tok, masked=tok.kv_seq != tok.seq, kernel=kernel)
            if w and attention_output_copied(arch):
                ledger.add("attention", t * arch.num_heads * arch.dim_per_head * (2 if n.autocast else n.compute))
    _norm(ledger, arch, n, t, True, w, kernel)
    c = 2 if n.autocast else n.compute
    f = arch.intermediate_size if grads.dense_mlp else f
    # gate output (SiLU), SiLU output and up output (the product); gpt-oss's clamped GLU keeps twice that
    # (the fused gate/up output, clamped gate, its sigmoid, clamped up + 1, the GLU).
    ledger.add("mlp", (6 if arch.family == "gpt_oss" else 3) * t * f * c)
    if w:
        _linear_inputs(ledger, n, t, h, 2, "mlp")  # gate/up input
        ledger.add("mlp", t * f * c)  # down_proj input
    _family_extras(ledger, arch, n, tok, w, kernel, moe=arch.is_moe and not grads.dense_mlp)
    if arch.is_moe and not grads.dense_mlp and grads.experts and grads.rank:
        _expert_adapters(ledger, arch, n, tok, grads)


def _mla_attention(ledger: Ledger, arch: Architecture, n: Numerics, t: int, weights: bool):
    """DeepSeek's multi-head latent attention (SDPA), op by op.

    The latents' RMSNorms (fp32 input and rsqrt; their 16-bit normalised copy for the weight); SDPA keeps the
    query (a cat of its nope and rotated parts), the keys (a new tensor: the shared rotated part expanded to
    every head), the values as a view of kv_b_proj's whole output (nope keys and values), its output and the
    log-sum-exp; o_proj reads a contiguous copy of the output. No cache tensor is saved: the cache holds the
    compressed latents. The trained linears keep their inputs (q_a and kv_a share the layer input).
    """
    c = 2 if n.autocast else n.compute
    heads, latents = arch.num_heads, [r for r in (arch.q_lora_rank, arch.kv_lora_rank) if r]
    q_width, v_width = heads * arch.dim_per_head, heads * arch.v_head_dim
    for rank in latents:
        ledger.add("norms", t * (4 * rank + 4) + (t * rank * c if weights else 0))
    if c == 4:  # in fp32 the kv latent's norm keeps its input, a view of kv_a's whole output, without a cast
        ledger.add("norms", t * arch.qk_rope_head_dim * 4)
    ledger.add("attention", t * (2 * q_width + heads * (arch.qk_nope_head_dim + arch.v_head_dim) + v_width) * c
               + t * heads * 4)
    if weights:
        _linear_inputs(ledger, n, t, arch.hidden_size, 2, "attention")  # q_a (or q) and kv_a input
        ledger.add("attention", t * (sum(latents) + v_width) * c)  # q_b/kv_b and o_proj inputs


def _family_extras(ledger: Ledger, arch: Architecture, n: Numerics, tok: Tokens, weights: bool, kernel: Kernel,
                   moe: bool):
    """What Qwen3, Gemma and MoE layers keep beyond a llama layer (MLA: `_mla_attention`).

    Written from the modules' forward code; checked against autograd on tiny
    models of each family (tests/estimate/test_family_activations.py, tolerances
    there): q/k norms are RMSNorms over each head; Gemma's post-attention and
    pre/post-feedforward norms are two more norms on the stream; Gemma 2's
    soft-capped attention runs eagerly (`_eager_attention`); a MoE layer (not
    DeepSeek's dense first layers) keeps its router's and routing's tensors
    (`_routed_experts`).
    """
    t, c = tok.count, (2 if n.autocast else n.compute)
    if arch.qk_norm:
        widths = (arch.num_heads + arch.kv_heads) * arch.dim_per_head
        ledger.add("norms", t * (widths * 4 + (arch.num_heads + arch.kv_heads) * 4))
        if weights:
            normalised = 4 if arch.family == "gemma3" else c
            ledger.add("norms", t * widths * normalised)
    if arch.norms_per_layer == 4:
        _norm(ledger, arch, n, t, True, weights, kernel)
        _norm(ledger, arch, n, t, True, weights, kernel)
    if moe:
        _routed_experts(ledger, arch, n, tok, c, weights)


def _routed_experts(ledger: Ledger, arch: Architecture, n: Numerics, tok: Tokens, c: int, weights: bool):
    """The router and the routing around the experts (transformers 5's default `grouped_mm` experts).

    Router: Mixtral and Qwen3-MoE keep the fp32 softmax over all experts and
    top-k's int64 indices; renormalising the top-k weights (Mixtral always,
    Qwen3-MoE with norm_topk_prob) keeps their fp32 sum and values. gpt-oss
    takes the top-k of the logits and keeps the softmax over those k.
    Routing (integrations/moe.py `grouped_mm_experts_forward`), with S = tokens
    x k: the int64 indices of the gather (perm // k), of the weights' reorder
    (perm) and of the un-permute (inv_perm), plus gpt-oss's expert-id gather of
    the biases when they train; the int32 group offsets; the gathered hidden
    states when the experts' weights train (a frozen grouped_mm keeps no input);
    the experts' output and the routing weights its product with them keeps
    (fp32 for Mixtral and DeepSeek, the logits' dtype after Qwen3-MoE's and gpt-oss's cast).
    The expert MLP itself (gate/up output, activation, down input) is priced
    with the dense MLP at `mlp_width`, DeepSeek's shared experts (plain linears) with it.
    """
    t, k, experts, h = tok.count, arch.experts_per_token, arch.num_experts, arch.hidden_size
    routed = t * k
    if arch.family == "gpt_oss":
        ledger.add("router", t * k * 8 + t * k * c)
    elif arch.family in MLA:
        _deepseek_router(ledger, arch, n, t, weights)
    else:
        ledger.add("router", t * experts * 4 + t * k * 8)
        if arch.family == "mixtral" or arch.norm_topk_prob:
            ledger.add("router", t * 4 + t * k * 4)
    index_gathers = 3 + (1 if arch.family == "gpt_oss" and weights else 0)
    ledger.add("router", routed * 8 * index_gathers + experts * 4)
    routing_weight = 4 if arch.family in ("mixtral",) + MLA else c
    ledger.add("mlp", routed * h * c * (2 if weights else 1) + routed * routing_weight)


def _deepseek_router(ledger: Ledger, arch: Architecture, n: Numerics, t: int, weights: bool):
    """DeepSeek's router in fp32: its input's fp32 copy (a no-op in fp32, where the shared experts' input is
    that tensor), the scores (V3's sigmoid, V2's softmax), the top-k's int64 indices, V2's boolean mask of the
    experts outside the chosen groups (its top-k values are the routing weights), and with norm_topk_prob the
    sum and the weights it divides (the routed_scaling_factor product keeps nothing). The group top-k only
    picks indices: its graph, and what it saved, is freed before the router returns (V3's masked scores too).
    """
    experts, k = arch.num_experts, arch.experts_per_token
    if weights and n.compute != 4:
        ledger.add("router", t * arch.hidden_size * 4)
    ledger.add("router", t * (experts * 4 + k * 8))
    if arch.n_group and arch.family == "deepseek_v2":
        ledger.add("router", t * experts)
    if arch.norm_topk_prob:
        ledger.add("router", t * 4 + t * k * 4)


def _expert_adapters(ledger: Ledger, arch: Architecture, n: Numerics, tok: Tokens, grads: LayerGrads):
    """peft's ParamWrapper LoRA on the 3D expert weights: a parametrisation folds W + B A into a new weight
    (baddbmm) on every forward, which grouped_mm keeps, with its inputs as for trained experts (the gathered
    hidden states, the down projection's input). The folded factors are kept in the weights' dtype: copies in
    16 bits, views of the fp32 adapter weights otherwise."""
    c = 2 if n.autocast else n.compute
    routed = tok.count * arch.experts_per_token
    adapted = dict(grads.experts)
    for linear in arch.layer_linears():
        if linear.role != "expert" or linear.name not in adapted:
            continue
        ledger.add("adapters", linear.copies * linear.in_features * linear.out_features * c)
        if n.residual == 2:
            rank = adapted[linear.name]
            ledger.add("adapters", linear.copies * rank * (linear.in_features + linear.out_features) * c)
        if linear.name == "down_proj" and not grads.weights:
            ledger.add("mlp", routed * linear.in_features * c)
    if not grads.weights:
        ledger.add("mlp", routed * arch.hidden_size * c)  # the gathered hidden states


def _gpt2_layer(ledger: Ledger, arch: Architecture, n: Numerics, tok: Tokens, grads: LayerGrads, kernel: Kernel):
    t, h, f = tok.count, arch.hidden_size, arch.intermediate_size
    w = grads.weights
    c = 2 if n.autocast else n.compute
    _norm(ledger, arch, n, t, grads.input, w, kernel)
    if w:
        _linear_inputs(ledger, n, t, h, 1, "attention")  # c_attn input
    # q, k, v are views of c_attn's output (all three kept through q); a cache holds k/v copies.
    ledger.add("attention", 3 * t * h * c + t * h * c + t * arch.num_heads * 4)  # + SDPA output, log-sum-exp
    if tok.kv_seq != tok.seq:
        ledger.add("attention", t * _mask_width(tok, kernel) * c)  # prefix: the additive mask SDPA saves
    ledger.add("dropout", t * h * _mask(kernel, c))  # resid_dropout after attention
    _norm(ledger, arch, n, t, True, w, kernel)
    if w:
        _linear_inputs(ledger, n, t, h, 1, "mlp")  # c_fc input
    ledger.add("mlp", _gelu_tanh_bytes(n, t * f))
    if w:
        ledger.add("mlp", t * f * (2 if n.autocast else c))  # c_proj input
    ledger.add("dropout", t * h * _mask(kernel, c))  # resid_dropout after the MLP


def _gelu_tanh_bytes(n: Numerics, elements: int) -> float:
    """GPT-2's gelu_new in Python: pow saves x, tanh its output, the last mul both factors.

    Under autocast pow runs in fp32 and promotes what follows, so three of the four are fp32.
    """
    if n.autocast:
        return elements * (4 + 4 + 2 + 4)
    return elements * 4 * n.compute


def encoder_layer(arch: Architecture, n: Numerics, tok: Tokens, grads: LayerGrads, kernel: Kernel = "cuda") -> Ledger:
    """Bytes one BERT layer (post-norm, GELU, dropout after each sub-block) keeps for its backward."""
    ledger = Ledger()
    if not grads.active:
        return ledger
    t, h, f = tok.count, arch.hidden_size, arch.intermediate_size
    w = grads.weights
    c = 2 if n.autocast else n.compute
    if w:
        _linear_inputs(ledger, n, t, h, 3, "attention")  # query/key/value input
    _attention_core(ledger, arch, n, tok, masked=False, kernel=kernel)
    ledger.add("dropout", t * h * _mask(kernel, c))
    _norm(ledger, arch, n, t, True, w, kernel)
    if w:
        _linear_inputs(ledger, n, t, h, 1, "mlp")  # intermediate.dense input
    ledger.add("mlp", t * f * c)  # GELU input
    if w:
        ledger.add("mlp", t * f * c)  # output.dense input
    ledger.add("dropout", t * h * _mask(kernel, c))
    _norm(ledger, arch, n, t, True, w, kernel)
    _adapters(ledger, arch, n, grads, t, kernel)
    return ledger


def layer(arch: Architecture, n: Numerics, tok: Tokens, grads: LayerGrads, kernel: Kernel = "cuda") -> Ledger:
    builder = encoder_layer if arch.kind == "encoder" else decoder_layer
    return builder(arch, n, tok, grads, kernel)


@functools.lru_cache(maxsize=4096)
def layer_bytes(arch: Architecture, n: Numerics, tok: Tokens, grads: LayerGrads, kernel: Kernel = "cuda") -> float:
    """What one layer keeps, in bytes; cached because every layer of a model has the same shape."""
    return layer(arch, n, tok, grads, kernel).total


def checkpoint_bytes(arch: Architecture, n: Numerics, tok: Tokens) -> float:
    """What a gradient-checkpointed layer keeps: its input hidden states (recomputed from them in backward)."""
    return tok.count * arch.hidden_size * n.residual


def outside_layers(
    arch: Architecture, n: Numerics, tok: Tokens, embeddings_grad: bool, input_leaf: bool, stream_grad: bool,
    head_trained: bool, head: str, kernel: Kernel = "cuda",
) -> Ledger:
    """Embedding dropout, the final norm and the head's input (logits and loss are `LogitsBytes`).

    `input_leaf`: enable_input_require_grads made the word-embedding output a leaf
    that requires grad, which autograd keeps, and the first layer's input is a
    separate tensor built from it (GPT-2/BERT add positions, a prompt is prepended).
    """
    ledger = Ledger()
    t, h = tok.count, arch.hidden_size
    if head_trained:
        ledger.add("inputs", t * 8)  # the token ids the embedding's backward scatters into
    if input_leaf:
        ledger.add("inputs", t * h * n.residual)
    if arch.family == "deepseek_v2" and stream_grad:
        ledger.add("inputs", tok.seq * arch.rotary_dim // 2 * 8)  # one complex64 table (freqs_cis)
    elif not arch.learned_positions and stream_grad:
        # rotary cos/sin, shared by all layers; gpt-oss's tables are half width (no cat(freqs, freqs)).
        width = arch.rotary_dim // 2 if arch.family == "gpt_oss" else arch.rotary_dim
        ledger.add("inputs", 2 * tok.seq * width * n.residual)
    if arch.family in HIDDEN_DROPOUT and embeddings_grad:
        ledger.add("dropout", t * h * _mask(kernel, n.residual))
    if arch.kind == "encoder":
        if embeddings_grad:
            _norm(ledger, arch, n, t, True, True, kernel)  # embedding LayerNorm
        if head == "lm" and stream_grad:
            # MLM head: dense (h->h), GELU, LayerNorm, then the decoder to the vocabulary.
            ledger.add("head", t * h * (n.residual + n.compute + n.compute + n.residual))
        if head == "classification" and head_trained:
            ledger.add("head", t * h * n.residual)  # the pooler's [CLS] slice keeps the last hidden state alive
        return ledger
    _norm(ledger, arch, n, t, stream_grad, head_trained, kernel)
    if head_trained:
        _linear_inputs(ledger, n, t, h, 1, "head")
    return ledger


#: The fewest tokens in a chunk of a fused loss: each chunk reads the whole head matrix, so a chunk of a few tokens
#: is a matrix-vector product bound by that read (measured on the CPU, hidden 256 and a 128K vocabulary: one-token
#: chunks ran 20x slower than the standard loss; benchmarks/fused_loss.py).
MIN_LOSS_CHUNK_TOKENS = 128


def loss_chunk_tokens(tokens: int, hidden_size: int, vocab_size: int) -> int:
    """Tokens per chunk of a fused loss: liger's choice (a chunk's logits about tokens x hidden), at least
    MIN_LOSS_CHUNK_TOKENS, at most all of them."""
    chunks = max(1, math.ceil(vocab_size / hidden_size))
    return min(tokens, max(MIN_LOSS_CHUNK_TOKENS, math.ceil(tokens / chunks)))


class LogitsBytes(NamedTuple):
    """The logits and cross-entropy tensors, which dominate with 128K-152K vocabularies.

    transformers' ForCausalLMLoss upcasts a decoder's logits to fp32 and runs
    log_softmax (its fp32 output is saved). In the backward pass NLL's gradient
    and log_softmax's gradient are two more tensors of that size, while the model
    output object (holding the logits) is still referenced: the calibration
    peaks show (12 + logits dtype) bytes per logit at that moment.

    With a fused loss (`fused`: liger-kernel's fused linear cross-entropy, or the
    chunked twin in backends/chunked_loss.py) no full logits exist: the forward
    keeps the head's input (unless the trained head saves it already) and the
    shifted labels, and the loss backward holds one chunk of logits with the
    same per-logit bytes, on `loss_chunk_tokens` tokens. Checked against autograd's saved tensors on CPU
    (tests/estimate/test_fused_loss.py).
    """

    kept: float  # after the forward pass: the logits (held by the output), saved log-probabilities, labels
    backward_extra: float  # on top of `kept` while the loss backward runs
    output: float  # the logits alone, alive until the step's outputs are dropped

    @classmethod
    def of(
        cls, arch: Architecture, n: Numerics, tok: Tokens, head: str, num_labels: int, fused: bool = False,
        head_input_saved: bool = False,
    ) -> "LogitsBytes":
        classes = arch.vocab_size if head == "lm" else num_labels
        positions = tok.count if head == "lm" else tok.batch
        elements = positions * classes
        # Encoder heads (BERT's MLM and classifiers) take the loss in the logits' dtype, without the fp32 upcast.
        loss = 4 if arch.kind == "decoder" and head == "lm" else n.logits
        per_logit = n.logits + loss + (n.logits if arch.final_logit_softcapping and head == "lm" else 0)  # Gemma 2's tanh
        if fused and arch.kind == "decoder" and head == "lm":
            chunk = loss_chunk_tokens(positions, arch.hidden_size, classes) * classes
            head_input = 0 if head_input_saved else positions * arch.hidden_size * n.residual
            return cls(kept=positions * 8 + head_input, backward_extra=chunk * (per_logit + 2 * loss), output=0)
        return cls(
            kept=elements * per_logit + positions * 8, backward_extra=elements * 2 * loss,
            output=elements * n.logits,
        )
