"""Fixtures for the backend tests: tiny models built offline, small data files, plans made by hand.

Every test here runs with HF_HUB_OFFLINE=1 and with internet sockets refused,
so a code path that reaches for the Hub fails the test instead of hanging.
The models are built from configs (a 2-layer Llama with a word-level
tokenizer, a 2-layer BERT with the packaged MiniLM's tokenizer) once per
session; the packaged MiniLM itself is used where the embedded default is the
point of the test.
"""

from __future__ import annotations

import csv
import json
import random
import socket
from pathlib import Path
from typing import Any

import pytest

from advisor.cli.main import main
from advisor.models import DataHandling, ParamGroup, Plan, Profile, Recommendation, Training, TrainingHyperparameters

REPO = Path(__file__).resolve().parents[2]
BANKING77 = REPO / "examples" / "data" / "banking77"

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
THINGS = ["sky", "grass", "sea", "sun", "plum", "carrot", "night", "snow", "apple", "leaf", "cloud", "coal"]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    real_connect = socket.socket.connect

    def refuse_internet(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network access in a test: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", refuse_internet)


def alpaca_records(count: int = 24, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    records = []
    for index in range(count):
        thing, colour = rng.choice(THINGS), rng.choice(COLOURS)
        records.append({
            "instruction": f"name the colour of the {thing}",
            "input": "" if index % 2 else f"the {thing} is {colour}",
            "output": f"the {thing} is {colour} today",
        })
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def banking77_sample(path: Path, labels: int = 4, per_label: int = 10, seed: int = 0) -> Path:
    """A small stratifiable Banking77 CSV: `per_label` rows of each of the first `labels` categories."""
    with open(BANKING77 / "train.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = sorted({row["category"] for row in rows})[:labels]
    rng = random.Random(seed)
    sample = []
    for label in chosen:
        matching = [row for row in rows if row["category"] == label]
        sample += rng.sample(matching, per_label)
    rng.shuffle(sample)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(sample)
    return path


def word_tokenizer(words: list[str]) -> Any:
    """A word-level fast tokenizer with <s>, </s>, <pad>, <unk>: no download, a vocabulary of ~60."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<s>", "</s>"]
    vocabulary = {token: index for index, token in enumerate(specials + sorted(set(words)))}
    core = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def tokenizer_words() -> list[str]:
    from advisor.backends.tasks import ALPACA_PROMPT_WITH_INPUT

    words = ALPACA_PROMPT_WITH_INPUT.replace("{instruction}", "").replace("{input}", "").split()
    words += ["name", "the", "colour", "of", "is", "today", "###", ":", ".", ",", "<|user|>", "<|assistant|>",
              "<|system|>", "|", "<", ">"]
    return words + COLOURS + THINGS


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama (hidden 32) and its word-level tokenizer, saved like a downloaded model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = word_tokenizer(tokenizer_words())
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT encoder (hidden 32) with the packaged MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from advisor.backends.loading import model_source

    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(model_source("all-minilm-l6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_plan(
    model: str, task: str = "instruction", method: str = "full", precision: str = "fp32",
    data: dict | None = None, **hyperparameters: Any,
) -> Plan:
    """A hand-made plan, as `advisor plan --json` would give one."""
    approach = "full_finetune" if method == "full" else "peft"
    values: dict[str, Any] = dict(learning_rate=5e-4, epochs=1, batch_size=4, seq_len=48, warmup_ratio=0.0,
                                  early_stopping_patience=None)
    values.update(hyperparameters)
    values["param_groups"] = [ParamGroup(**group) for group in values.get("param_groups", [])]
    return Plan(
        profile=Profile(goal="behavior", task=task, model=model, gpu="cpu"),
        recommendation=Recommendation(approach=approach, method=method, summary="a test plan"),
        training=Training(method=method, precision=precision, hyperparameters=TrainingHyperparameters(**values),
                          data=DataHandling(**(data or {"validation_ratio": 0.25}))),
    )


def save_plan(plan: Plan, path: Path) -> Path:
    path.write_text(plan.model_dump_json(indent=2), encoding="utf-8")
    return path


def run_cli(capsys: pytest.CaptureFixture, *args: Any) -> tuple[int, str, str]:
    """`advisor ARGS` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def kill_the_save_at(monkeypatch: pytest.MonkeyPatch, trainer_class: type, step: int) -> None:
    """The save of checkpoint-`step` dies after the weights, before the optimizer state: as close to a kill as a
    test in this process gets (KeyboardInterrupt)."""
    original = trainer_class._save_optimizer_and_scheduler

    def dies(self, output_dir):
        if self.state.global_step == step:
            raise KeyboardInterrupt
        return original(self, output_dir)

    monkeypatch.setattr(trainer_class, "_save_optimizer_and_scheduler", dies)
