"""The chunked causal-LM loss gives the standard loss and gradients: padded and packed, masked, accumulated, LoRA."""

from __future__ import annotations

import copy

import pytest
import torch

from advisor.backends.chunked_loss import chunked_cross_entropy, fused_loss_kind, install_chunked_loss
from advisor.backends.packing import packing_collator
from advisor.backends.tasks import IGNORE_INDEX, make_collator
from conftest import alpaca_records, make_plan, run_cli, save_plan, write_jsonl


def _model(family: str, tiny_llama):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    torch.manual_seed(0)
    if family == "llama":
        model = LlamaForCausalLM.from_pretrained(tiny_llama)
    else:  # GPT-2 ties its head to the word embedding
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))  # train mode: no dropout noise
        assert model.lm_head.weight is model.transformer.wte.weight
    model.config.use_cache = False
    return model.train(), tokenizer


def _batch(tokenizer, packed: bool) -> dict:
    words = "name the colour of the sky is blue today and the sea is green".split()
    examples = []
    for length, prompt in ((5, 2), (11, 4), (8, 0)):
        ids = tokenizer(" ".join(words[:length]), add_special_tokens=False)["input_ids"][:length]
        examples.append({"input_ids": ids, "labels": [IGNORE_INDEX] * max(prompt, 1) + ids[max(prompt, 1):]})
    if packed:
        return dict(packing_collator()(examples))
    return dict(make_collator("causal_lm", tokenizer)([dict(e, attention_mask=[1] * len(e["input_ids"])) for e in examples]))


def _loss_and_grads(model, batch: dict, num_items) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad()
    kwargs = {} if num_items is None else {"num_items_in_batch": num_items}
    loss = model(**batch, **kwargs).loss
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("num_items", [None, 37])
def test_the_chunked_loss_gives_the_standard_loss_and_gradients(family, packed, num_items, tiny_llama):
    standard, tokenizer = _model(family, tiny_llama)
    chunked = install_chunked_loss(copy.deepcopy(standard), chunk=5)  # several chunks, the last one short
    batch = _batch(tokenizer, packed)
    expected_loss, expected = _loss_and_grads(standard, batch, num_items)
    loss, grads = _loss_and_grads(chunked, batch, num_items)
    assert chunked(**batch).logits is None  # the training forward made no full logits
    assert loss == pytest.approx(expected_loss, abs=1e-5)
    assert grads.keys() == expected.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected[name], atol=1e-5, rtol=1e-5, msg=name)


def test_lora_gradients_match_and_evaluation_keeps_the_logits(tiny_llama):
    from peft import LoraConfig, get_peft_model

    base, tokenizer = _model("llama", tiny_llama)
    standard = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False))
    chunked = install_chunked_loss(copy.deepcopy(standard), chunk=5)  # several chunks, the last one short
    batch = _batch(tokenizer, packed=True)
    expected_loss, expected = _loss_and_grads(standard, batch, None)
    loss, grads = _loss_and_grads(chunked, batch, None)
    assert loss == pytest.approx(expected_loss, abs=1e-5)
    assert any("lm_head" in name for name in grads)  # LoRA on the head itself trains through the chunks
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected[name], atol=1e-5, rtol=1e-5, msg=name)
    chunked.eval()
    with torch.no_grad():
        assert chunked(**batch).logits.shape[-1] == len(tokenizer)


def test_chunks_only_score_labelled_tokens_and_split_the_tokens():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=True)
    hidden = torch.randn(2, 9, 8, requires_grad=True)
    labels = torch.randint(0, 50, (2, 9))
    labels[0, :5] = IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(
        head(hidden)[:, :-1].reshape(-1, 50), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    for chunk in (1, 4, 18, 100):
        assert chunked_cross_entropy(head, hidden, labels, chunk=chunk).item() == pytest.approx(expected.item(), abs=1e-6)


def test_the_fused_loss_is_liger_on_cuda_only_where_installed_and_never_for_classification():
    assert fused_loss_kind(True, "causal_lm", "cpu") == "chunked"
    assert fused_loss_kind(True, "classification", "cpu") is None
    assert fused_loss_kind(None, "causal_lm", "cpu") is None
    assert fused_loss_kind(False, "causal_lm", "cuda") is None


def test_a_plan_with_the_fused_loss_trains_with_the_chunked_loss_on_the_cpu(tiny_llama, tmp_path, capsys, monkeypatch):
    import json

    from advisor.backends import chunked_loss

    calls = []
    standard = chunked_loss.chunked_cross_entropy
    monkeypatch.setattr(chunked_loss, "chunked_cross_entropy", lambda *a, **k: calls.append(1) or standard(*a, **k))
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(16))
    plan = save_plan(make_plan(str(tiny_llama), method="lora", fused_cross_entropy=True), tmp_path / "plan.json")
    code, _, err = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", tmp_path / "run",
                           "--max-steps", "2", "--no-probe", "--json")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"
    assert calls  # the training steps' loss


def test_on_cuda_with_liger_installed_the_trainer_is_asked_for_ligers_fused_loss(monkeypatch):
    from advisor.backends import chunked_loss, trainer_setup
    from advisor.backends.hardware import Device
    from advisor.models import TrainingHyperparameters

    monkeypatch.setattr(chunked_loss, "liger_available", lambda: True)
    hp = TrainingHyperparameters(learning_rate=1e-4, fused_cross_entropy=True)
    settings = trainer_setup._liger(hp, "causal_lm", Device(kind="cuda", name="H100"))
    assert settings["use_liger_kernel"] and settings["liger_kernel_config"]["fused_linear_cross_entropy"]
    assert trainer_setup._liger(hp, "causal_lm", Device(kind="cpu", name="cpu")) == {}
    assert trainer_setup._liger(hp, "classification", Device(kind="cuda", name="H100")) == {}


def test_a_batch_with_nothing_scored_still_backpropagates():
    head = torch.nn.Linear(8, 50)
    hidden = torch.randn(1, 6, 8, requires_grad=True)
    loss = chunked_cross_entropy(head, hidden, torch.full((1, 6), IGNORE_INDEX), num_items_in_batch=torch.tensor(3))
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad is not None
