"""`plan --data` counts tokens with the model's own tokenizer.json (the `tokenizers` library), else says it estimated."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.cli.main import main
from advisor.data import model_token_counter, validate_file
from advisor.data.stats import estimate_tokens
from advisor.models import Profile
from advisor.planner import plan_for

#: Digits the tokenizer never merged: one token each, where bytes/4 counts four to a token.
NUMBERS = "5789" * 50
WORDS = "name the colour of the sky it is blue green and what about the sea".split()
LLAMA_CONFIG = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 300, "hidden_size": 32,
    "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
}


def save_tokenizer(directory: Path) -> Path:
    """A byte-level BPE trained on a few words, with a BOS its post-processor adds, as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([" ".join(WORDS)] * 8, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    directory.mkdir(exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory


@pytest.fixture
def model_dir(tmp_path) -> Path:
    directory = tmp_path / "tiny-model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(LLAMA_CONFIG), encoding="utf-8")
    return save_tokenizer(directory)


@pytest.fixture
def number_data(tmp_path) -> Path:
    """Alpaca records whose instruction is 200 digits: about 50 tokens by bytes/4, about 200 by the tokenizer."""
    path = tmp_path / "numbers.jsonl"
    records = [{"instruction": f"{NUMBERS}{index % 10}", "input": "", "output": "it is blue"} for index in range(300)]
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path, monkeypatch):
    """No catalog model's tokenizer.json in the cache, whatever this machine has downloaded."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))


def test_counts_come_from_the_tokenizer_json_and_differ_from_bytes_over_four(model_dir, number_data):
    count = model_token_counter(str(model_dir))
    assert count is not None
    assert count(NUMBERS) == len(NUMBERS) + 1  # one token a digit, and the BOS the post-processor adds
    lengths = validate_file(number_data, tokenizer=count).stats.token_lengths
    estimated = validate_file(number_data).stats.token_lengths
    assert lengths.method == "tokenizer" and estimated.method == "estimate"
    assert lengths.p95 > 3 * estimated.p95


def test_a_tokenizer_json_saved_with_padding_and_truncation_counts_the_text_itself(model_dir):
    from tokenizers import Tokenizer

    saved = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    saved.enable_padding(length=128)  # as all-MiniLM-L6-v2's tokenizer.json ships
    saved.enable_truncation(max_length=16)
    saved.save(str(model_dir / "tokenizer.json"))
    assert model_token_counter(str(model_dir))(NUMBERS) == len(NUMBERS) + 1


def test_plan_seq_len_comes_from_the_tokenizer_p95(model_dir, number_data):
    plan = plan_for(Profile(model=str(model_dir), data=str(number_data), method="lora", gpu="cpu"))
    p95 = validate_file(number_data, tokenizer=model_token_counter(str(model_dir))).stats.token_lengths.p95
    assert plan.training.hyperparameters.seq_len == math.ceil(p95 / 64) * 64 == 256
    assert not any("estimated as ceil" in line for line in plan.assumptions)
    assert any("counted with" in line and "prompt template" in line for line in plan.assumptions)
    assert not any("longest prompt" in line for line in plan.warnings)
    # the failure: every prompt fits the planned length, so truncation leaves each one an answer
    count = model_token_counter(str(model_dir))
    assert count(NUMBERS + "9") < plan.training.hyperparameters.seq_len


def test_without_a_tokenizer_json_the_plan_says_it_estimated(model_dir, number_data):
    (model_dir / "tokenizer.json").unlink()
    assert model_token_counter(str(model_dir)) is None
    plan = plan_for(Profile(model=str(model_dir), data=str(number_data), method="lora", gpu="cpu"))
    estimate = estimate_tokens(f"{NUMBERS}0\nit is blue")
    assert plan.training.hyperparameters.seq_len == 64 < estimate * 4
    assert any("estimated as ceil(UTF-8 bytes / 4)" in line for line in plan.assumptions)
    assert any("estimated as ceil" in line for line in plan.warnings)


def test_a_catalog_model_offline_and_uncached_is_estimated(number_data):
    assert model_token_counter("llama-3.2-1b") is None
    plan = plan_for(Profile(model="llama-3.2-1b", data=str(number_data), method="lora", gpu="a100-80gb"))
    assert any("estimated as ceil" in line and "llama-3.2-1b" in line for line in plan.assumptions)


def test_a_catalog_model_reads_the_tokenizer_json_in_the_hub_cache(tmp_path, number_data):
    snapshot = tmp_path / "hub" / "models--meta-llama--Llama-3.2-1B" / "snapshots" / "abc123"
    snapshot.parent.mkdir(parents=True)
    save_tokenizer(snapshot)
    count = model_token_counter("llama-3.2-1b")
    assert count is not None and count(NUMBERS) == len(NUMBERS) + 1


def test_validate_tokenizer_flag_uses_the_same_counter(model_dir, number_data, capsys):
    code = main(["validate", str(number_data), "--tokenizer", str(model_dir), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["stats"]["token_lengths"]["method"] == "tokenizer"
    assert report["stats"]["token_lengths"]["p95"] == model_token_counter(str(model_dir))(f"{NUMBERS}9\nit is blue")
    assert report["stats"]["token_lengths"]["prompt_max"] == len(NUMBERS) + 2
    main(["validate", str(number_data), "--tokenizer", str(model_dir)])
    assert f"longest prompt {len(NUMBERS) + 2}" in " ".join(capsys.readouterr().out.split())


PROBE = """
import contextlib, io, json, sys
from advisor.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    main({argv!r})
print(json.dumps([name for name in ("torch", "transformers", "datasets") if name in sys.modules]))
"""


@pytest.mark.parametrize("command", ["plan", "validate"])
def test_counting_with_the_tokenizer_imports_no_training_stack(model_dir, number_data, command):
    argv = (["plan", "--model", str(model_dir), "--data", str(number_data), "--method", "lora", "--json"]
            if command == "plan" else ["validate", str(number_data), "--tokenizer", str(model_dir), "--json"])
    result = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_a_prompt_longer_than_the_planned_seq_len_is_left_out_with_its_length(model_dir, number_data):
    records = number_data.read_text(encoding="utf-8")
    outlier = {"instruction": NUMBERS * 3, "input": "", "output": "it is blue"}
    number_data.write_text(records + json.dumps(outlier) + "\n", encoding="utf-8")
    count = model_token_counter(str(model_dir))
    lengths = validate_file(number_data, tokenizer=count).stats.token_lengths
    assert lengths.prompt_max == count(NUMBERS * 3) == 601
    plan = plan_for(Profile(model=str(model_dir), data=str(number_data), method="lora", gpu="cpu"))
    assert plan.training.hyperparameters.seq_len == 256  # the p95 still decides
    assert plan.training.data.long_prompts == "drop"
    assert any(line.startswith("1 of your 301 records have a prompt of 256 tokens or more (counted with the model's "
                               "tokenizer, before the template; the longest takes 601)") for line in plan.warnings)
    forced = plan_for(Profile(model=str(model_dir), data=str(number_data), method="lora", gpu="cpu", seq_len=256))
    assert forced.training.data.long_prompts == "refuse"
    assert any("longest prompt takes 601 tokens (counted with the model's tokenizer" in line
               and "seq_len 256" in line for line in forced.warnings)
