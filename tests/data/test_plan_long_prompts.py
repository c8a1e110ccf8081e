"""`plan --data`: records whose prompt alone fills the seq_len the data chose are left out (plan.json
training.data.long_prompts "drop"), and the warning gives their numbers; a --seq-len the user chose, or more such
records than a 95th-percentile length leaves out, keeps "refuse"."""

from __future__ import annotations

import json

import pytest

from advisor.data import load_records, validate_file
from advisor.data.records import prompt_text
from advisor.data.report import ValidationReport
from advisor.data.stats import estimate_tokens
from advisor.models import Profile
from advisor.planner import plan_for


@pytest.fixture(autouse=True)
def estimated_counts(tmp_path, monkeypatch):
    """No catalog model's tokenizer.json in the cache: the counts are the bytes/4 estimate on every machine."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))


def prompt_lengths(path) -> list[int]:
    """Each record's prompt, counted as the planner counts without a tokenizer (independently of the report)."""
    return [estimate_tokens(prompt_text("alpaca", record)) for record in load_records(path).records]


def seed_plan(seed_tasks, **given):
    return plan_for(Profile(goal="behavior", task="instruction", data=str(seed_tasks), **given))


def test_the_seed_tasks_plan_leaves_out_the_records_whose_prompt_fills_its_seq_len(seed_tasks):
    plan = seed_plan(seed_tasks)
    seq_len = plan.training.hyperparameters.seq_len
    prompts = prompt_lengths(seed_tasks)
    filling = sum(1 for length in prompts if length >= seq_len)
    assert len(prompts) == 175 and 0 < filling <= 0.05 * len(prompts)
    assert plan.training.data.long_prompts == "drop"
    [warning] = [line for line in plan.warnings if "records have a prompt of" in line]
    assert warning.startswith(f"{filling} of your 175 records have a prompt of {seq_len} tokens or more (estimated, "
                              f"before the template; the longest takes {max(prompts)})")
    assert f"trains on the other {175 - filling}" in warning
    assert f"--seq-len above {max(prompts)}" in warning and 'set training.data.long_prompts to "refuse"' in warning
    assert not any("{" in line or "}" in line for line in plan.warnings)  # every placeholder filled in
    assert not any("longest prompt takes" in line for line in plan.warnings)  # the refusal warning is replaced
    [rule] = [entry for entry in plan.rationale if entry.rule == "data.long-prompts-left-out"]
    assert "https://docs.axolotl.ai/docs/config-reference.html" in rule.source


def test_a_seq_len_the_user_chose_keeps_refusing_those_records(seed_tasks):
    plan = seed_plan(seed_tasks, seq_len=320)
    assert plan.training.hyperparameters.seq_len == 320
    assert plan.training.data.long_prompts == "refuse"
    assert any(line.startswith(f"your data's longest prompt takes {max(prompt_lengths(seed_tasks))} tokens")
               and "`advisor execute` refuses it" in line for line in plan.warnings)
    assert not any(entry.rule == "data.long-prompts-left-out" for entry in plan.rationale)


def test_more_than_the_tail_of_long_prompts_keeps_refusing_them(tmp_path):
    """A model whose context caps seq_len below the data's p95: a tenth of the prompts fill it, no tail to drop."""
    model = tmp_path / "short-context"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 300, "hidden_size": 32,
        "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 128}), encoding="utf-8")
    long_prompt = "describe the sea " * 80  # 1,360 bytes: 340 tokens by the estimate
    records = [{"instruction": long_prompt if index % 10 == 0 else "name the colour of the sky", "input": "",
                "output": "it is blue"} for index in range(60)]
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    plan = plan_for(Profile(model=str(model), data=str(data), method="lora", gpu="cpu"))
    assert plan.training.hyperparameters.seq_len == 128
    assert plan.training.data.long_prompts == "refuse"
    assert any(line.startswith("6 of your 60 records (10%) have a prompt that fills the plan's seq_len 128, more than "
                               "the 5%") and 'long_prompts stays "refuse"' in line for line in plan.warnings)


def test_the_prompt_lengths_count_in_memory_and_stay_out_of_the_json(seed_tasks):
    report = validate_file(seed_tasks)
    lengths = report.stats.token_lengths
    assert lengths.prompts_filling(lengths.prompt_max) >= 1 and lengths.prompts_filling(lengths.prompt_max + 1) == 0
    assert lengths.prompts_filling(1) == sum(1 for length in prompt_lengths(seed_tasks) if length >= 1)
    assert "prompt_lengths" not in report.model_dump_json()
    read_back = ValidationReport.model_validate_json(report.model_dump_json())
    assert read_back.stats.token_lengths.prompts_filling(64) is None  # cannot count: it says so
