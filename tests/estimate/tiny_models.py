"""Tiny transformers models built from config on CPU, wrapped the way each method trains them.

The estimator tests measure these (saved tensors, parameter and gradient bytes,
saved adapter files) and compare with the formulas. Shapes are small enough to
run in a second and wide enough that per-token terms dominate.
"""

from __future__ import annotations

from advisor.architecture import Architecture

VOCAB = 256
CONFIGS = {
    "llama": dict(model_type="llama", num_hidden_layers=2, hidden_size=64, intermediate_size=176,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=256,
                  tie_word_embeddings=True),
    "qwen2": dict(model_type="qwen2", num_hidden_layers=2, hidden_size=64, intermediate_size=176,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=256,
                  tie_word_embeddings=False),
    "gpt2": dict(model_type="gpt2", n_layer=2, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=256,
                 attn_pdrop=0.0, bos_token_id=0, eos_token_id=0),
    "bert": dict(model_type="bert", num_hidden_layers=2, hidden_size=64, intermediate_size=176,
                 num_attention_heads=4, vocab_size=VOCAB, max_position_embeddings=256,
                 attention_probs_dropout_prob=0.0),
}
#: The later families, on llama's tiny shape (special token ids inside the tiny vocabulary).
_LLAMA_SHAPE = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=256, pad_token_id=0,
                    bos_token_id=1, eos_token_id=2)
CONFIGS.update({
    "qwen3": dict(_LLAMA_SHAPE, model_type="qwen3", head_dim=16, tie_word_embeddings=True),
    "gemma2": dict(_LLAMA_SHAPE, model_type="gemma2", head_dim=16, sliding_window=512),
    "gemma3": dict(_LLAMA_SHAPE, model_type="gemma3_text", head_dim=16, sliding_window=512),
    "phi3": dict(_LLAMA_SHAPE, model_type="phi3"),
    "mixtral": dict(_LLAMA_SHAPE, model_type="mixtral", num_local_experts=4, num_experts_per_tok=2),
    "qwen3_moe": dict(_LLAMA_SHAPE, model_type="qwen3_moe", num_experts=4, num_experts_per_tok=2,
                      moe_intermediate_size=48),
    "qwen3_moe_normalised": dict(_LLAMA_SHAPE, model_type="qwen3_moe", num_experts=4, num_experts_per_tok=2,
                                 moe_intermediate_size=48, norm_topk_prob=True),
    "gpt_oss": dict(_LLAMA_SHAPE, model_type="gpt_oss", num_local_experts=4, num_experts_per_tok=2, head_dim=16,
                    sliding_window=512),
    "deepseek_v3": dict(_LLAMA_SHAPE, model_type="deepseek_v3", num_key_value_heads=4, n_routed_experts=4,
                        n_shared_experts=1, first_k_dense_replace=1, moe_intermediate_size=48, num_experts_per_tok=2,
                        q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16,
                        n_group=1, topk_group=1),
    "deepseek_v2": dict(_LLAMA_SHAPE, model_type="deepseek_v2", num_key_value_heads=4, n_routed_experts=4,
                        n_shared_experts=1, first_k_dense_replace=1, moe_intermediate_size=48, num_experts_per_tok=2,
                        q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16),
    "deepseek_v2_grouped": dict(_LLAMA_SHAPE, model_type="deepseek_v2", num_key_value_heads=4, n_routed_experts=4,
                                n_shared_experts=2, moe_intermediate_size=48, num_experts_per_tok=2, q_lora_rank=None,
                                kv_lora_rank=16,
                                qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16,
                                topk_method="group_limited_greedy", n_group=2, topk_group=1),
})


def architecture(family: str) -> Architecture:
    return Architecture.from_hf_config(CONFIGS[family])


def head(family: str) -> str:
    """Decoders train as language models; the encoder as a classifier (its use in advisor)."""
    return "classification" if family == "bert" else "lm"


def build(family: str, dtype: str = "float32", method: str = "full", **hp):
    """A random-init model of `family` in `dtype`, made trainable by the method plugin `method`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from advisor.manager import get_method

    values = dict(CONFIGS[family])
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    # Gemma 2's soft-capped attention and gpt-oss's sinks have no SDPA path: transformers runs them eagerly.
    config._attn_implementation = "eager" if config.model_type in ("gemma2", "gpt_oss") else "sdpa"
    torch.manual_seed(0)
    if head(family) == "classification":
        model = AutoModelForSequenceClassification.from_config(config, dtype=getattr(torch, dtype))
    else:
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.train()
    plugin = get_method(method)
    task_type = "SEQ_CLS" if head(family) == "classification" else "CAUSAL_LM"
    model = plugin.build(model, plugin.hyperparameters(hp), task_type=task_type)
    model.train()
    return model


def batch(family: str, batch_size: int, seq: int, seed: int = 0) -> dict:
    """Model inputs: token ids, and labels (the ids themselves, or one class per example)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch_size, seq), generator=generator)
    labels = torch.zeros(batch_size, dtype=torch.long) if head(family) == "classification" else ids
    return {"input_ids": ids, "labels": labels}


def footprint(family: str, method: str, **hp):
    from advisor.manager import get_method

    plugin = get_method(method)
    return plugin.footprint(architecture(family), plugin.hyperparameters(hp))


def saved_tensor_bytes(model, inputs: dict) -> int:
    """Bytes of the tensors autograd saves for backward in one forward pass.

    Counted with torch.autograd.graph.saved_tensors_hooks, one storage once
    (views share it), parameters and 0-dim scalars left out, and only the
    tensors still alive when the forward pass returns: a branch of the graph
    whose output is dropped during the forward (DeepSeek's group top-k, which
    only picks indices) frees what it saved, and its address may be reused.
    """
    import weakref

    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    # Keyed by address and size: a freed storage's address can be reused by a live one of another size
    # (which made the DeepSeek LoRA count flaky by 3 KB when keyed by address alone).
    storages: dict[tuple[int, int], list] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if tensor.dim() and storage.data_ptr() not in params:
            storages.setdefault((storage.data_ptr(), storage.nbytes()), []).append(weakref.ref(tensor))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = model(**inputs)
    alive = sum(nbytes for (_, nbytes), refs in storages.items() if any(ref() is not None for ref in refs))
    del output
    return alive


def bytes_alive_after_forward(model, inputs: dict) -> int:
    """CPU bytes the forward pass leaves allocated (saved tensors, checkpoints, outputs, cache).

    Summed from the profiler's memory events: what was allocated minus what was
    freed while `model(**inputs)` ran, with the output still referenced.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        output = model(**inputs)
    alive = sum(event.self_cpu_memory_usage for event in prof.events())
    del output
    return alive
