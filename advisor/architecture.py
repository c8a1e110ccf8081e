"""A transformer's shape, and the exact parameter layout it implies.

The estimator, the method plugins and the planner all count parameters from
this one description, so a LoRA count, a freeze count and a total agree with
what torch reports for the real module (tests compare them on tiny models
built from config). Pure Python: no torch here.
"""

from __future__ import annotations

import functools
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

Family = Literal["gpt2", "llama", "qwen2", "mistral", "bert"]

#: model_type in a Hugging Face config.json -> our family.
HF_MODEL_TYPES: dict[str, Family] = {
    "gpt2": "gpt2",
    "llama": "llama",
    "qwen2": "qwen2",
    "mistral": "mistral",
    "bert": "bert",
}


class LinearSpec(BaseModel):
    """One linear (or GPT-2 Conv1D) module inside each transformer layer."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="the module's attribute name, as peft's target_modules sees it")
    in_features: int
    out_features: int
    bias: bool
    role: Literal["attention", "mlp"]

    @property
    def params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)


class Architecture(BaseModel):
    """The shape of a decoder LM or encoder, as in the model's config.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: Family
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: Optional[int] = Field(None, gt=0)
    head_dim: Optional[int] = Field(None, gt=0)
    vocab_size: int = Field(gt=0)
    tied_embeddings: bool = True
    max_position_embeddings: int = 2048
    type_vocab_size: int = 0

    @model_validator(mode="after")
    def _heads_divide(self) -> "Architecture":
        if self.kv_heads and self.num_heads % self.kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        return self

    # -- derived shape -------------------------------------------------
    @property
    def kind(self) -> Literal["decoder", "encoder"]:
        return "encoder" if self.family == "bert" else "decoder"

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def gated_mlp(self) -> bool:
        """Llama-style SwiGLU MLP (gate, up, down) rather than two matrices."""
        return self.family in ("llama", "qwen2", "mistral")

    @property
    def uses_rmsnorm(self) -> bool:
        return self.gated_mlp

    @property
    def learned_positions(self) -> bool:
        return self.family in ("gpt2", "bert")

    # -- parameter layout ----------------------------------------------
    def layer_linears(self) -> tuple[LinearSpec, ...]:
        """The linear modules of one transformer layer, in peft's naming (computed once per shape)."""
        return _layer_linears(self)


    def norm_params(self) -> int:
        """Parameters of one normalisation layer (RMSNorm: weight; LayerNorm: weight + bias)."""
        return self.hidden_size if self.uses_rmsnorm else 2 * self.hidden_size

    def layer_params(self) -> int:
        """All parameters of one transformer layer: its linears and its two norms."""
        return sum(linear.params for linear in self.layer_linears()) + 2 * self.norm_params()

    def embedding_params(self) -> int:
        """Token embeddings plus learned positions / token types and the embedding norm (BERT)."""
        count = self.vocab_size * self.hidden_size
        if self.learned_positions:
            count += self.max_position_embeddings * self.hidden_size
        if self.family == "bert":
            count += self.type_vocab_size * self.hidden_size + self.norm_params()
        return count

    def head_params(self) -> int:
        """The final norm and an untied lm_head (decoders); the pooler (encoders)."""
        if self.kind == "encoder":
            return self.hidden_size * self.hidden_size + self.hidden_size
        lm_head = 0 if self.tied_embeddings else self.vocab_size * self.hidden_size
        return self.norm_params() + lm_head

    def total_params(self) -> int:
        return self.embedding_params() + self.num_layers * self.layer_params() + self.head_params()

    # -- construction --------------------------------------------------
    @classmethod
    def from_hf_config(cls, config: dict) -> "Architecture":
        """Read a Hugging Face config.json (already parsed); raises ValueError if unsupported."""
        model_type = config.get("model_type")
        family = HF_MODEL_TYPES.get(str(model_type))
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
        return cls(
            family=family,
            num_layers=config["num_hidden_layers"],
            hidden_size=config["hidden_size"],
            intermediate_size=config["intermediate_size"],
            num_heads=config["num_attention_heads"],
            num_kv_heads=config.get("num_key_value_heads"),
            head_dim=config.get("head_dim"),
            vocab_size=config["vocab_size"],
            tied_embeddings=config.get("tie_word_embeddings", family == "bert"),
            max_position_embeddings=config.get("max_position_embeddings", 2048),
            type_vocab_size=config.get("type_vocab_size", 2 if family == "bert" else 0),
        )


@functools.lru_cache(maxsize=64)
def _layer_linears(arch: "Architecture") -> tuple[LinearSpec, ...]:
    h, ffn = arch.hidden_size, arch.intermediate_size
    q_out, kv_out = arch.num_heads * arch.dim_per_head, arch.kv_heads * arch.dim_per_head
    if arch.family == "gpt2":
        return (
            LinearSpec(name="c_attn", in_features=h, out_features=3 * h, bias=True, role="attention"),
            LinearSpec(name="c_proj", in_features=h, out_features=h, bias=True, role="attention"),
            LinearSpec(name="c_fc", in_features=h, out_features=ffn, bias=True, role="mlp"),
            LinearSpec(name="c_proj", in_features=ffn, out_features=h, bias=True, role="mlp"),
        )
    if arch.family == "bert":
        return (
            LinearSpec(name="query", in_features=h, out_features=h, bias=True, role="attention"),
            LinearSpec(name="key", in_features=h, out_features=h, bias=True, role="attention"),
            LinearSpec(name="value", in_features=h, out_features=h, bias=True, role="attention"),
            LinearSpec(name="dense", in_features=h, out_features=h, bias=True, role="attention"),
            LinearSpec(name="dense", in_features=h, out_features=ffn, bias=True, role="mlp"),
            LinearSpec(name="dense", in_features=ffn, out_features=h, bias=True, role="mlp"),
        )
    qkv_bias = arch.family == "qwen2"
    return (
        LinearSpec(name="q_proj", in_features=h, out_features=q_out, bias=qkv_bias, role="attention"),
        LinearSpec(name="k_proj", in_features=h, out_features=kv_out, bias=qkv_bias, role="attention"),
        LinearSpec(name="v_proj", in_features=h, out_features=kv_out, bias=qkv_bias, role="attention"),
        LinearSpec(name="o_proj", in_features=q_out, out_features=h, bias=False, role="attention"),
        LinearSpec(name="gate_proj", in_features=h, out_features=ffn, bias=False, role="mlp"),
        LinearSpec(name="up_proj", in_features=h, out_features=ffn, bias=False, role="mlp"),
        LinearSpec(name="down_proj", in_features=ffn, out_features=h, bias=False, role="mlp"),
    )
