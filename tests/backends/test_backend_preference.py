"""DPO through `advisor execute`: preference pairs train with TRL's DPOTrainer, and the adapter reloads with peft."""

from __future__ import annotations

import json
import random

import pytest

from advisor.backends.preference import encode_pairs
from conftest import kill_the_save_at, make_plan, run_cli, save_plan, write_jsonl


def pairs(count: int = 16, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        thing, colour = rng.choice(["sky", "sea", "grass", "snow"]), rng.choice(["blue", "green", "white", "red"])
        # TRL joins prompt and answer as they are: the answer brings its own leading space.
        rows.append({"prompt": f"name the colour of the {thing}", "chosen": f" the {thing} is {colour}",
                     "rejected": f" the {thing} is {colour} {colour} {colour}"})
    return rows


def test_pairs_are_measured_as_the_trainer_tokenises_them(tiny_llama, tmp_path):
    """encode_pairs mirrors DPOTrainer's own tokenisation (it relies on trl's private _tokenize: this guards it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    records = pairs(4)
    encoded = encode_pairs(records, tokenizer, seq_len=64)
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_llama),
        args=DPOConfig(str(tmp_path), max_length=64, report_to="none", use_cpu=True, bf16=False),
        train_dataset=__import__("datasets").Dataset.from_list(records), processing_class=tokenizer,
    )
    for feature, row in zip(encoded.features, trainer.train_dataset):
        assert feature["chosen_ids"] == row["chosen_ids"]
        assert feature["rejected_ids"] == row["rejected_ids"]
        assert feature["input_ids"][: len(row["prompt_ids"])] == row["prompt_ids"]


def test_a_prompt_that_fills_seq_len_is_dropped_like_trl_drops_it(tiny_llama):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    long = {"prompt": "name the colour of the sky " * 20, "chosen": "blue", "rejected": "red"}
    encoded = encode_pairs([long, *pairs(1)], tokenizer, seq_len=16)
    assert encoded.dropped == [0]


@pytest.mark.parametrize("policy", ["drop", "refuse"])
def test_a_pair_whose_prompt_fills_seq_len_follows_the_plans_long_prompts(tiny_llama, tmp_path, policy):
    from advisor.backends.models import ExecuteRequest
    from advisor.backends.preflight import run_preflight
    from advisor.backends.prepared import prepare

    long = {"prompt": "name the colour of the sky " * 20, "chosen": " blue", "rejected": " red"}
    data = write_jsonl(tmp_path / "pairs.jsonl", [*pairs(5), long])
    plan = make_plan(str(tiny_llama), task="preference", method="dpo", seq_len=32,
                     data={"validation_ratio": 0.25, "long_prompts": policy})
    prepared = prepare(ExecuteRequest(plan=plan, plan_path="plan.json", data=str(data),
                                      output_dir=str(tmp_path / "run")))
    report = run_preflight(prepared, probe=False)
    assert prepared.encoded.dropped == [5]  # the pair TRL's trainer would drop, never handed to it
    if policy == "drop":
        assert report.ok and report.rows_left_out == 1 and report.left_out_lines == [6]
    else:
        assert not report.ok and [error.line for error in report.errors] == [6]
        assert "training.data.long_prompts" in report.errors[0].message


@pytest.mark.slow
def test_dpo_trains_evaluates_saves_and_reloads(tiny_llama, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = write_jsonl(tmp_path / "pairs.jsonl", pairs())
    plan = save_plan(make_plan(str(tiny_llama), task="preference", method="dpo", learning_rate=5e-5),
                     tmp_path / "plan.json")
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", out, "--max-steps", "2",
                           "--save-steps", "1", "--json")
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["task"] == "preference"
    evaluation = metrics["main"]["final_eval"]
    assert {"loss", "rewards/margins", "rewards/accuracies"} <= set(evaluation)
    from advisor.backends.artifacts import loss_figure
    from advisor.backends.models import RunMetrics

    labels = [line.get_label() for axes in loss_figure(RunMetrics(**metrics)).axes for line in axes.get_lines()]
    assert "model: validation reward margin" in labels
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    model = PeftModel.from_pretrained(base, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("name the colour of the sky", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] > ids["input_ids"].shape[1]


def test_sft_data_with_a_preference_plan_is_one_line(tiny_llama, tmp_path, capsys):
    data = write_jsonl(tmp_path / "sft.jsonl", [{"instruction": f"say hi {i}", "output": "hi"} for i in range(4)])
    plan = save_plan(make_plan(str(tiny_llama), task="preference", method="dpo"), tmp_path / "plan.json")
    code, _, err = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", tmp_path / "run", "--dry-run")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "prompt/chosen/rejected" in errors[0]


def test_the_dry_run_shows_a_decoded_pair_as_the_loss_sees_it(tiny_llama, tmp_path, capsys):
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs(8))
    plan = save_plan(make_plan(str(tiny_llama), task="preference", method="dpo"), tmp_path / "plan.json")
    code, out, err = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", tmp_path / "run",
                             "--dry-run", "--no-probe", "--json")
    assert code == 0, err
    row = json.loads(out)["preflight"]["preview"][0]
    first = pairs(8)[0]
    assert row["text_marked"].startswith("[no loss: ") and first["chosen"].strip() in row["text_marked"]
    assert first["rejected"].strip() in row["rejected_marked"] and first["prompt"] in row["rejected_marked"]
    assert [span["loss"] for span in row["rejected_spans"]] == [False, True]


@pytest.mark.slow
def test_dpo_checkpoints_are_staged_and_a_killed_save_resumes_from_the_previous_one(tiny_llama, tmp_path, capsys,
                                                                                  monkeypatch):
    """As PlanTrainer's (test_backend_resume.py): the save of checkpoint-2 dies midway, only its staged copy is partial."""
    from transformers import Trainer

    data = write_jsonl(tmp_path / "pairs.jsonl", pairs())
    plan = save_plan(make_plan(str(tiny_llama), task="preference", method="dpo", learning_rate=5e-5),
                     tmp_path / "plan.json")
    out = tmp_path / "run"
    run = ("execute", plan, "--data", data, "--output-dir", out, "--max-steps", "3", "--save-steps", "1")
    kill_the_save_at(monkeypatch, Trainer, 2)
    code, _, _ = run_cli(capsys, *run)
    assert code == 130
    checkpoints = out / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("*checkpoint-*")) == ["checkpoint-1"]
    assert (checkpoints / ".incomplete" / "checkpoint-2" / "adapter_model.safetensors").is_file()

    monkeypatch.undo()
    code, _, err = run_cli(capsys, *run, "--resume")
    assert code == 0, err
    assert "checkpoint-2': its save was interrupted" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["main"]["steps"] == 3
    assert not (checkpoints / ".incomplete").exists()
