"""A transformer's shape, and the exact parameter layout it implies.

The estimator, the method plugins and the planner all count parameters from
this one description, so a LoRA count, a freeze count and a total agree with
what torch reports for the real module (tests/estimate/test_architectures.py
builds each family's tiny config on the meta device and compares every count).
Pure Python: no torch here.

Families and what sets them apart (transformers 5 module layout):

- gpt2: Conv1D c_attn (fused q/k/v), learned positions, LayerNorm.
- llama, mistral, qwen2, qwen3: q/k/v/o and a SwiGLU MLP, RMSNorm; qwen2 has
  q/k/v biases; qwen3 an RMSNorm over each head of q and k (q_norm, k_norm).
- gemma2, gemma3: as llama plus pre/post feed-forward norms (four per layer),
  a tied 256k vocabulary, head_dim independent of the hidden size; gemma3 has
  q/k norms. The multimodal Gemma 3 checkpoints (model_type "gemma3") nest the
  text config under text_config and load with a SigLIP vision tower, counted
  in `vision_params`. Soft-capping and sliding windows add no parameters.
- phi3 (Phi-3, Phi-4): fused qkv_proj and gate_up_proj.
- mixtral, qwen3_moe, gpt_oss: a router and `num_experts` experts per layer,
  stored as 3D parameters (not nn.Linear modules: peft's target_modules and
  bitsandbytes do not see them). Memory holds all experts; a token runs through
  `experts_per_token` of them (FLOPs).
- deepseek_v2, deepseek_v3: multi-head latent attention (low-rank q and kv
  projections with their own norms), shared experts beside the routed ones,
  the first `dense_layers` layers with a dense MLP.
- bert, roberta, xlm-roberta: post-norm encoders with learned positions and
  token types; counted as AutoModel builds them (pooler included).

Anything else (T5 and other encoder-decoders, ModernBERT, unknown types) is
refused by name in `from_hf_config`, never approximated.
"""

import functools
from typing import Literal, NamedTuple, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

Family = Literal[
    "gpt2", "llama", "qwen2", "mistral", "bert", "roberta", "xlm-roberta", "qwen3", "gemma2", "gemma3", "phi3",
    "mixtral", "qwen3_moe", "gpt_oss", "deepseek_v2", "deepseek_v3",
]

#: model_type in a Hugging Face config.json -> our family.
HF_MODEL_TYPES: dict[str, Family] = {
    "gpt2": "gpt2",
    "llama": "llama",
    "qwen2": "qwen2",
    "mistral": "mistral",
    "bert": "bert",
    "roberta": "roberta",
    "xlm-roberta": "xlm-roberta",
    "qwen3": "qwen3",
    "gemma2": "gemma2",
    "gemma3_text": "gemma3",
    "gemma3": "gemma3",
    "phi3": "phi3",
    "mixtral": "mixtral",
    "qwen3_moe": "qwen3_moe",
    "gpt_oss": "gpt_oss",
    "deepseek_v2": "deepseek_v2",
    "deepseek_v3": "deepseek_v3",
}
#: Known model_types refused with a reason rather than a guess.
REFUSED_MODEL_TYPES = {
    "t5": "an encoder-decoder (the estimator prices decoder-only and encoder-only models)",
    "mt5": "an encoder-decoder (the estimator prices decoder-only and encoder-only models)",
    "umt5": "an encoder-decoder (the estimator prices decoder-only and encoder-only models)",
    "bart": "an encoder-decoder (the estimator prices decoder-only and encoder-only models)",
    "modernbert": "not priced yet (alternating global/local attention, GLU encoder)",
}
ENCODERS = ("bert", "roberta", "xlm-roberta")
MOE = ("mixtral", "qwen3_moe", "gpt_oss", "deepseek_v2", "deepseek_v3")
MLA = ("deepseek_v2", "deepseek_v3")
QK_NORM = ("qwen3", "gemma3", "qwen3_moe")
#: head_dim when a config.json leaves it out (the transformers 5 config class default); else hidden / heads.
DEFAULT_HEAD_DIM = {"qwen3": 128, "gemma2": 256, "gemma3": 256, "gpt_oss": 64}
#: tie_word_embeddings when a config.json leaves it out.
TIED_BY_DEFAULT = ("bert", "roberta", "xlm-roberta", "gpt2", "gemma2", "gemma3")
Role = Literal["attention", "mlp", "router", "expert"]


class LinearSpec(NamedTuple):
    """One matrix-multiply weight inside a transformer layer: a linear (or Conv1D), a router, or the experts'.

    Derived here from a validated Architecture, many times a plan: a NamedTuple, neither a pydantic class to build
    nor an instance to validate."""

    name: str  # the module's (or expert parameter's) attribute name, as peft sees it
    in_features: int
    out_features: int
    bias: bool
    role: Role
    copies: int = 1  # experts stored in one 3D parameter (1 for a plain linear)

    @property
    def params(self) -> int:
        return self.copies * (self.in_features * self.out_features + (self.out_features if self.bias else 0))

    @property
    def is_module(self) -> bool:
        """An nn.Linear/Conv1D module: what peft's target_modules and bitsandbytes' 4-bit layers see.

        Routers and experts are plain parameters of custom modules in transformers 5.
        """
        return self.role in ("attention", "mlp")


class Architecture(BaseModel):
    """The shape of a decoder LM or encoder, as in the model's config.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: Family
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0, description="the dense MLP's width (MoE: of the dense layers, if any)")
    num_heads: int = Field(gt=0)
    num_kv_heads: Optional[int] = Field(None, gt=0)
    head_dim: Optional[int] = Field(None, gt=0)
    vocab_size: int = Field(gt=0)
    tied_embeddings: bool = True
    max_position_embeddings: int = 2048
    type_vocab_size: int = 0
    attention_bias: bool = Field(False, description="q/k/v/o carry biases (qwen2's q/k/v always do)")
    # Mixture of experts.
    num_experts: int = Field(0, ge=0, description="routed experts per MoE layer (0: a dense model)")
    experts_per_token: int = Field(0, ge=0, description="experts each token runs through")
    moe_intermediate_size: Optional[int] = Field(None, gt=0, description="one expert's width")
    shared_expert_intermediate_size: int = Field(0, ge=0, description="the always-on shared experts' total width")
    dense_layers: int = Field(0, ge=0, description="the first layers, whose MLP is dense (DeepSeek first_k_dense_replace)")
    norm_topk_prob: bool = Field(False, description="Qwen3-MoE/DeepSeek: the top-k routing weights are renormalised")
    n_group: int = Field(0, ge=0, description="DeepSeek: expert groups the router picks from first (0: no groups)")
    # Multi-head latent attention (DeepSeek).
    q_lora_rank: Optional[int] = Field(None, gt=0)
    kv_lora_rank: Optional[int] = Field(None, gt=0)
    qk_nope_head_dim: Optional[int] = Field(None, gt=0)
    qk_rope_head_dim: Optional[int] = Field(None, gt=0)
    v_head_dim: Optional[int] = Field(None, gt=0)
    # No parameters, but they change what the step computes and keeps.
    sliding_window: Optional[int] = Field(None, gt=0, description="local attention span of the sliding layers")
    sliding_layers: int = Field(0, ge=0, description="layers that attend within the sliding window")
    attn_logit_softcapping: Optional[float] = Field(None, gt=0, description="Gemma 2: tanh-capped attention scores")
    final_logit_softcapping: Optional[float] = Field(None, gt=0, description="Gemma 2: tanh-capped logits")
    vision_params: int = Field(0, ge=0, description="a multimodal checkpoint's vision tower and projector")

    @model_validator(mode="after")
    def _consistent(self) -> "Architecture":
        if self.kv_heads and self.num_heads % self.kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        if self.family in MOE:
            if not (self.num_experts and self.experts_per_token and self.moe_intermediate_size):
                raise ValueError(f"a {self.family} model needs num_experts, experts_per_token and moe_intermediate_size")
            if self.experts_per_token > self.num_experts:
                raise ValueError("experts_per_token cannot exceed num_experts")
            if self.dense_layers >= self.num_layers:
                raise ValueError("dense_layers must leave at least one MoE layer")
        elif self.num_experts or self.dense_layers:
            raise ValueError(f"a {self.family} model has no experts")
        if self.family in MLA and not (self.kv_lora_rank and self.qk_nope_head_dim and self.qk_rope_head_dim
                                       and self.v_head_dim):
            raise ValueError("multi-head latent attention needs kv_lora_rank, qk_nope/qk_rope_head_dim and v_head_dim")
        return self

    # -- derived shape -------------------------------------------------
    @property
    def kind(self) -> Literal["decoder", "encoder"]:
        return "encoder" if self.family in ENCODERS else "decoder"

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def dim_per_head(self) -> int:
        """The key (and query) width per head; under MLA the no-position and rotary parts together."""
        if self.family in MLA:
            return self.qk_nope_head_dim + self.qk_rope_head_dim
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def value_dim_per_head(self) -> int:
        return self.v_head_dim if self.family in MLA else self.dim_per_head

    @property
    def rotary_dim(self) -> int:
        """Width of the rotary cos/sin tables (MLA rotates only its qk_rope part)."""
        return self.qk_rope_head_dim if self.family in MLA else self.dim_per_head

    @property
    def gated_mlp(self) -> bool:
        """SwiGLU/GeGLU MLP (gate, up, down) rather than two matrices."""
        return self.family not in ("gpt2",) + ENCODERS

    @property
    def uses_rmsnorm(self) -> bool:
        return self.gated_mlp

    @property
    def learned_positions(self) -> bool:
        return self.family == "gpt2" or self.kind == "encoder"

    @property
    def is_moe(self) -> bool:
        return self.family in MOE

    @property
    def qk_norm(self) -> bool:
        return self.family in QK_NORM

    @property
    def norms_per_layer(self) -> int:
        """Hidden-size norms per layer: two, or four with Gemma's pre/post feed-forward norms."""
        return 4 if self.family in ("gemma2", "gemma3") else 2

    @property
    def moe_layers(self) -> int:
        return self.num_layers - self.dense_layers if self.is_moe else 0

    # -- parameter layout ----------------------------------------------
    def layer_linears(self) -> tuple[LinearSpec, ...]:
        """The matrices of one (the top, for MoE the sparse) transformer layer, in peft's naming."""
        return _layer_linears(self, sparse=self.is_moe)

    def layer_groups(self) -> tuple[tuple[int, tuple[LinearSpec, ...]], ...]:
        """(number of layers, their matrices), bottom first: the dense layers of a MoE model, then the rest."""
        if not self.is_moe:
            return ((self.num_layers, self.layer_linears()),)
        dense = ((self.dense_layers, _layer_linears(self, sparse=False)),) if self.dense_layers else ()
        return dense + ((self.moe_layers, self.layer_linears()),)

    def linears_named(self, names) -> tuple[LinearSpec, ...]:
        """The top layer's linear modules called one of `names` (a method's adapted linears)."""
        return _linears_named(self, tuple(names))

    @property
    def mlp_width(self) -> int:
        """The MLP width one token runs through in the top layer: its routed experts plus shared ones under MoE."""
        if not self.is_moe:
            return self.intermediate_size
        return self.experts_per_token * self.moe_intermediate_size + self.shared_expert_intermediate_size

    def norm_params(self) -> int:
        """Parameters of one normalisation layer (RMSNorm: weight; LayerNorm: weight + bias)."""
        return self.hidden_size if self.uses_rmsnorm else 2 * self.hidden_size

    def _layer_extras(self) -> int:
        """A layer's parameters outside its matrices: norms, q/k norms, MLA's latent norms, attention sinks."""
        count = self.norms_per_layer * self.norm_params()
        if self.qk_norm:
            count += 2 * self.dim_per_head
        if self.family in MLA:
            count += self.kv_lora_rank + (self.q_lora_rank or 0)
        if self.family == "gpt_oss":
            count += self.num_heads  # the attention sinks
        return count

    def layer_params(self, linears: Optional[tuple[LinearSpec, ...]] = None) -> int:
        """All parameters of one transformer layer (the top one unless `linears` says which kind)."""
        return sum(linear.params for linear in (linears or self.layer_linears())) + self._layer_extras()

    def layers_params(self) -> int:
        """All transformer layers together."""
        return _layers_params(self)

    def top_layers_params(self, layers: int, matrices_only: bool = False) -> int:
        """The top `layers` layers (what freeze trains): MoE layers first, then dense ones from the top down."""
        return _top_layers_params(self, layers, matrices_only)

    def _top_layers_params(self, layers: int, matrices_only: bool) -> int:
        total, left = 0, layers
        for count, linears in reversed(self.layer_groups()):
            taken = min(left, count)
            per_layer = sum(l.params for l in linears) if matrices_only else self.layer_params(linears)
            total, left = total + taken * per_layer, left - taken
        return total

    def matmul_params(self, modules_only: bool = False) -> int:
        """Weights of every layer matrix (no biases): all of them, or only nn.Linear modules (what bnb quantises)."""
        return sum(
            count * sum(l.copies * l.in_features * l.out_features for l in linears if l.is_module or not modules_only)
            for count, linears in self.layer_groups()
        )

    def active_matmul_params_per_layer(self) -> float:
        """Matrix weights one token multiplies by in an average layer: MoE counts only its routed experts."""
        total = 0.0
        for count, linears in self.layer_groups():
            for linear in linears:
                used = self.experts_per_token if linear.role == "expert" else linear.copies
                total += count * used * linear.in_features * linear.out_features
        return total / self.num_layers

    def active_params(self) -> int:
        """Parameters one token uses: all of them, less the routed experts it does not run through."""
        idle = sum(count * sum(l.params // l.copies * (l.copies - self.experts_per_token)
                               for l in linears if l.role == "expert")
                   for count, linears in self.layer_groups())
        return self.total_params() - idle

    def embedding_params(self) -> int:
        """Token embeddings plus learned positions / token types and the embedding norm (encoders)."""
        count = self.vocab_size * self.hidden_size
        if self.learned_positions:
            count += self.max_position_embeddings * self.hidden_size
        if self.kind == "encoder":
            count += self.type_vocab_size * self.hidden_size + self.norm_params()
        return count

    def head_params(self) -> int:
        """The final norm and an untied lm_head (decoders); the pooler (encoders)."""
        if self.kind == "encoder":
            return self.hidden_size * self.hidden_size + self.hidden_size
        lm_head = 0 if self.tied_embeddings else self.vocab_size * self.hidden_size
        return self.norm_params() + lm_head

    def total_params(self) -> int:
        return self.embedding_params() + self.layers_params() + self.head_params() + self.vision_params

    # -- construction --------------------------------------------------
    @classmethod
    def from_hf_config(cls, config: dict) -> "Architecture":
        """Read a Hugging Face config.json (already parsed); raises ValueError if unsupported."""
        model_type = str(config.get("model_type"))
        if model_type in REFUSED_MODEL_TYPES:
            raise ValueError(f"model_type {model_type!r} is {REFUSED_MODEL_TYPES[model_type]}")
        family = HF_MODEL_TYPES.get(model_type)
        if family is None:
            raise ValueError(
                f"unsupported model_type {model_type!r}; supported: {', '.join(sorted(HF_MODEL_TYPES))}"
            )
        if family == "gpt2":
            hidden = config.get("n_embd", 768)
            return cls(
                family=family, num_layers=config.get("n_layer", 12), hidden_size=hidden,
                intermediate_size=config.get("n_inner") or 4 * hidden, num_heads=config.get("n_head", 12),
                vocab_size=config.get("vocab_size", 50257), tied_embeddings=config.get("tie_word_embeddings", True),
                max_position_embeddings=config.get("n_positions", 1024),
            )
        vision = 0
        if model_type == "gemma3":  # the multimodal checkpoint: text config nested, vision tower alongside
            text = config.get("text_config") or {}
            vision = siglip_vision_params(config.get("vision_config") or {}, text.get("hidden_size", 2304))
            tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings", True))
            config = {**text, "tie_word_embeddings": tied}
        return cls(**_common_fields(family, config), **_moe_fields(family, config), **_mla_fields(family, config),
                   **_attention_fields(family, config), vision_params=vision)


def _common_fields(family: str, config: dict) -> dict:
    encoder = family in ENCODERS
    head_dim = config.get("head_dim") or DEFAULT_HEAD_DIM.get(family)
    return dict(
        family=family,
        num_layers=config["num_hidden_layers"],
        hidden_size=config["hidden_size"],
        intermediate_size=config["intermediate_size"],
        num_heads=config["num_attention_heads"],
        num_kv_heads=config.get("num_key_value_heads"),
        head_dim=None if family in MLA else head_dim,
        vocab_size=config["vocab_size"],
        tied_embeddings=config.get("tie_word_embeddings", family in TIED_BY_DEFAULT),
        max_position_embeddings=config.get("max_position_embeddings", 2048),
        type_vocab_size=config.get("type_vocab_size", 2) if encoder else 0,
        attention_bias=bool(config.get("attention_bias", family == "gpt_oss")),
    )


def _first(config: dict, *keys: str):
    return next((config[key] for key in keys if config.get(key) is not None), None)


def _moe_fields(family: str, config: dict) -> dict:
    if family not in MOE:
        return {}
    experts = _first(config, "num_experts", "num_local_experts", "n_routed_experts")
    dense = 0
    if family in MLA:
        dense = config.get("first_k_dense_replace", 0)
    if family == "qwen3_moe":
        step = config.get("decoder_sparse_step", 1)
        layers = config["num_hidden_layers"]
        dense_layers = set(config.get("mlp_only_layers") or []) | {i for i in range(layers) if (i + 1) % step}
        if dense_layers != set(range(len(dense_layers))):
            raise ValueError("a qwen3_moe config whose dense (mlp_only) layers are not the first ones is not priced yet")
        dense = len(dense_layers)
    moe_width = config.get("moe_intermediate_size") or (config["intermediate_size"] if family in ("mixtral", "gpt_oss")
                                                         else None)
    shared = config.get("n_shared_experts") or 0
    return dict(
        num_experts=experts or 0, experts_per_token=config.get("num_experts_per_tok") or 0,
        moe_intermediate_size=moe_width, shared_expert_intermediate_size=shared * (moe_width or 0),
        dense_layers=dense, norm_topk_prob=bool(config.get("norm_topk_prob", family == "deepseek_v3")),
        **_router_groups(family, config),
    )


def _router_groups(family: str, config: dict) -> dict:
    """DeepSeek-V3 always routes through groups (transformers' default 8); V2 with group_limited_greedy."""
    if family == "deepseek_v3" or (family == "deepseek_v2" and config.get("topk_method") == "group_limited_greedy"):
        return dict(n_group=config.get("n_group") or 8)
    return {}


#: transformers' DeepseekV2Config/DeepseekV3Config defaults, for the keys a config leaves out (null stays None).
MLA_DEFAULTS = dict(q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128)


def _mla_fields(family: str, config: dict) -> dict:
    if family not in MLA:
        return {}
    return {key: config[key] if key in config else default for key, default in MLA_DEFAULTS.items()}


def _attention_fields(family: str, config: dict) -> dict:
    """Sliding windows and Gemma 2's soft-capping: no parameters, but they change attention's work and memory."""
    window = config.get("sliding_window") if config.get("use_sliding_window", True) else None
    layer_types = config.get("layer_types") or []
    if window and layer_types:
        sliding = sum(kind == "sliding_attention" for kind in layer_types)
    elif window and family == "gemma2":
        sliding = config["num_hidden_layers"] // 2 + config["num_hidden_layers"] % 2  # even layers (from 0) slide
    elif window and family == "gemma3":
        pattern = config.get("sliding_window_pattern", 6)
        sliding = sum(bool((i + 1) % pattern) for i in range(config["num_hidden_layers"]))
    else:
        sliding = config["num_hidden_layers"] if window and family in ("mistral", "phi3") else 0
    return dict(
        sliding_window=window if sliding else None, sliding_layers=sliding,
        # Gemma 2's config class defaults (50, 30) apply when a config.json leaves them out.
        attn_logit_softcapping=config.get("attn_logit_softcapping", 50.0) if family == "gemma2" else None,
        final_logit_softcapping=config.get("final_logit_softcapping", 30.0 if family == "gemma2" else None)
        if family in ("gemma2", "gemma3") else None,
    )


def siglip_vision_params(vision: dict, text_hidden: int) -> int:
    """Gemma 3's SigLIP vision tower and its projector to the text width (transformers' defaults where absent)."""
    h, ffn = vision.get("hidden_size", 768), vision.get("intermediate_size", 3072)
    patch, image, channels = vision.get("patch_size", 16), vision.get("image_size", 224), vision.get("num_channels", 3)
    mlp = h * ffn + ffn + ffn * h + h
    layer = 4 * (h * h + h) + 2 * 2 * h + mlp
    count = channels * patch * patch * h + h + (image // patch) ** 2 * h
    count += vision.get("num_hidden_layers", 12) * layer + 2 * h
    if vision.get("vision_use_head", True):  # attention-pooling head: probe, MultiheadAttention, norm, MLP
        count += h + 3 * h * h + 3 * h + h * h + h + 2 * h + mlp
    return count + h * text_hidden + h  # mm_input_projection_weight, mm_soft_emb_norm


@functools.lru_cache(maxsize=256)
def _layers_params(arch: "Architecture") -> int:
    return sum(count * arch.layer_params(linears) for count, linears in arch.layer_groups())


@functools.lru_cache(maxsize=1024)
def _top_layers_params(arch: "Architecture", layers: int, matrices_only: bool) -> int:
    return arch._top_layers_params(layers, matrices_only)


@functools.lru_cache(maxsize=1024)
def _linears_named(arch: "Architecture", names: tuple[str, ...]) -> tuple[LinearSpec, ...]:
    wanted = set(names)
    return tuple(linear for linear in arch.layer_linears() if linear.is_module and linear.name in wanted)


@functools.lru_cache(maxsize=64)
def _layer_linears(arch: "Architecture", sparse: bool) -> tuple[LinearSpec, ...]:
    return _attention_linears(arch) + (_moe_linears(arch) if sparse else _dense_mlp_linears(arch))


def _attention_linears(arch: "Architecture") -> tuple[LinearSpec, ...]:
    h = arch.hidden_size
    if arch.family == "gpt2":
        return (
            LinearSpec(name="c_attn", in_features=h, out_features=3 * h, bias=True, role="attention"),
            LinearSpec(name="c_proj", in_features=h, out_features=h, bias=True, role="attention"),
        )
    if arch.kind == "encoder":
        return tuple(LinearSpec(name=name, in_features=h, out_features=h, bias=True, role="attention")
                     for name in ("query", "key", "value", "dense"))
    if arch.family in MLA:
        return _mla_linears(arch)
    q_out, kv_out = arch.num_heads * arch.dim_per_head, arch.kv_heads * arch.dim_per_head
    bias = arch.attention_bias or arch.family == "qwen2"
    out_bias = arch.attention_bias
    if arch.family == "phi3":
        return (
            LinearSpec(name="o_proj", in_features=q_out, out_features=h, bias=out_bias, role="attention"),
            LinearSpec(name="qkv_proj", in_features=h, out_features=q_out + 2 * kv_out, bias=bias, role="attention"),
        )
    return (
        LinearSpec(name="q_proj", in_features=h, out_features=q_out, bias=bias, role="attention"),
        LinearSpec(name="k_proj", in_features=h, out_features=kv_out, bias=bias, role="attention"),
        LinearSpec(name="v_proj", in_features=h, out_features=kv_out, bias=bias, role="attention"),
        LinearSpec(name="o_proj", in_features=q_out, out_features=h, bias=out_bias, role="attention"),
    )


def _mla_linears(arch: "Architecture") -> tuple[LinearSpec, ...]:
    """DeepSeek's multi-head latent attention: queries (optionally) and keys/values through low-rank latents."""
    h, heads, bias = arch.hidden_size, arch.num_heads, arch.attention_bias
    q_out = heads * arch.dim_per_head
    if arch.q_lora_rank:
        queries = (
            LinearSpec(name="q_a_proj", in_features=h, out_features=arch.q_lora_rank, bias=bias, role="attention"),
            LinearSpec(name="q_b_proj", in_features=arch.q_lora_rank, out_features=q_out, bias=False, role="attention"),
        )
    else:
        queries = (LinearSpec(name="q_proj", in_features=h, out_features=q_out, bias=False, role="attention"),)
    kv_rank = arch.kv_lora_rank
    return queries + (
        LinearSpec(name="kv_a_proj_with_mqa", in_features=h, out_features=kv_rank + arch.qk_rope_head_dim, bias=bias,
                   role="attention"),
        LinearSpec(name="kv_b_proj", in_features=kv_rank, out_features=heads * (arch.qk_nope_head_dim + arch.v_head_dim),
                   bias=False, role="attention"),
        LinearSpec(name="o_proj", in_features=heads * arch.v_head_dim, out_features=h, bias=bias, role="attention"),
    )


def _gated_mlp(h: int, ffn: int) -> tuple[LinearSpec, ...]:
    return (
        LinearSpec(name="gate_proj", in_features=h, out_features=ffn, bias=False, role="mlp"),
        LinearSpec(name="up_proj", in_features=h, out_features=ffn, bias=False, role="mlp"),
        LinearSpec(name="down_proj", in_features=ffn, out_features=h, bias=False, role="mlp"),
    )


def _dense_mlp_linears(arch: "Architecture") -> tuple[LinearSpec, ...]:
    h, ffn = arch.hidden_size, arch.intermediate_size
    if arch.family == "gpt2":
        return (
            LinearSpec(name="c_fc", in_features=h, out_features=ffn, bias=True, role="mlp"),
            LinearSpec(name="c_proj", in_features=ffn, out_features=h, bias=True, role="mlp"),
        )
    if arch.kind == "encoder":
        return (
            LinearSpec(name="dense", in_features=h, out_features=ffn, bias=True, role="mlp"),
            LinearSpec(name="dense", in_features=ffn, out_features=h, bias=True, role="mlp"),
        )
    if arch.family == "phi3":
        return (
            LinearSpec(name="gate_up_proj", in_features=h, out_features=2 * ffn, bias=False, role="mlp"),
            LinearSpec(name="down_proj", in_features=ffn, out_features=h, bias=False, role="mlp"),
        )
    return _gated_mlp(h, ffn)


def _moe_linears(arch: "Architecture") -> tuple[LinearSpec, ...]:
    """The router, the experts (3D parameters, gate and up fused) and DeepSeek's shared experts (plain linears)."""
    h, ffn, experts = arch.hidden_size, arch.moe_intermediate_size, arch.num_experts
    gpt_oss = arch.family == "gpt_oss"
    router = LinearSpec(name="router" if gpt_oss else "gate", in_features=h, out_features=experts, bias=gpt_oss,
                        role="router")
    routed = (
        LinearSpec(name="gate_up_proj", in_features=h, out_features=2 * ffn, bias=gpt_oss, role="expert",
                   copies=experts),
        LinearSpec(name="down_proj", in_features=ffn, out_features=h, bias=gpt_oss, role="expert", copies=experts),
    )
    shared = _gated_mlp(h, arch.shared_expert_intermediate_size) if arch.shared_expert_intermediate_size else ()
    return (router,) + routed + shared
