"""Packing: the same examples give the same per-token losses packed and padded; off with a reason where it cannot hold."""

from __future__ import annotations

import json

import pytest
import torch

from advisor.backends.packing import packing_collator, packing_refusal
from advisor.backends.tasks import IGNORE_INDEX, make_collator
from advisor.manager import get_method
from conftest import alpaca_records, make_plan, run_cli, save_plan, write_jsonl


def _examples(tokenizer, lengths=(5, 11, 8)):
    words = "name the colour of the sky is blue today and the sea is green".split()
    examples = []
    for length in lengths:
        ids = tokenizer(" ".join(words[:length]), add_special_tokens=False)["input_ids"][:length]
        examples.append({"input_ids": ids, "labels": [IGNORE_INDEX, *ids[1:]]})
    return examples


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per-token next-token losses of one row, on the tokens that carry a label."""
    shifted, targets = logits[:-1], labels[1:]
    losses = torch.nn.functional.cross_entropy(shifted.float(), targets.clamp(min=0), reduction="none")
    return losses[targets != IGNORE_INDEX].tolist()


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_packed_and_padded_rows_give_the_same_per_token_losses(family, tiny_llama):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    torch.manual_seed(0)
    if family == "llama":
        model = LlamaForCausalLM.from_pretrained(tiny_llama)
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=64))
    model.eval()
    # As the Trainer sets it (TrainingArguments.use_cache=False): with a cache the packed mask is not built.
    model.config.use_cache = False
    examples = _examples(tokenizer)
    padded = make_collator("causal_lm", tokenizer)([dict(e, attention_mask=[1] * len(e["input_ids"])) for e in examples])
    packed = packing_collator()(examples)
    assert packed["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in examples))
    with torch.no_grad():
        padded_logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        packed_logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits
    offset = 0
    for row, example in enumerate(examples):
        length = len(example["input_ids"])
        labels = torch.tensor(example["labels"])
        alone = _token_losses(padded_logits[row, :length], labels)
        together = _token_losses(packed_logits[0, offset:offset + length], packed["labels"][0, offset:offset + length])
        assert together == pytest.approx(alone, abs=1e-5)
        offset += length


def test_packing_is_off_with_the_reason_where_it_cannot_hold():
    assert packing_refusal("causal_lm", get_method("lora"), "llama") is None
    assert "virtual tokens" in packing_refusal("causal_lm", get_method("prompt_tuning"), "llama")
    assert "classification" in packing_refusal("classification", get_method("lora"), "bert")
    assert "does not mask packed rows" in packing_refusal("causal_lm", get_method("lora"), "no-such-model-type")


def test_the_run_trains_packed_and_says_so(tiny_llama, tmp_path, capsys):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(16))
    plan = save_plan(make_plan(str(tiny_llama), method="lora"), tmp_path / "plan.json")
    code, out, err = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", tmp_path / "dry",
                             "--dry-run", "--no-probe")
    assert code == 0, err
    assert "packing    on" in out
    code, _, err = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", tmp_path / "run",
                           "--max-steps", "2", "--no-probe", "--json")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"


def test_packing_forced_on_where_it_cannot_hold_names_the_plan_key(tiny_llama, tmp_path, capsys):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(8))
    plan = save_plan(make_plan(str(tiny_llama), method="prompt_tuning", packing=True), tmp_path / "plan.json")
    code, _, err = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", tmp_path / "run", "--dry-run")
    assert code == 2
    assert "training.hyperparameters.packing" in err.strip().splitlines()[-1]
