"""The seq_len `plan --data` derives from the model's tokenizer.json is one the preflight accepts for the same data,
and the few records whose prompt alone fills it are left out of the run, not a reason to refuse it.

The failure this guards against: with bytes/4 counts the plan chose a seq_len
shorter than every prompt, and the preflight then refused each row as having
no token left to learn from.
"""

from __future__ import annotations

from advisor.backends.models import ExecuteRequest
from advisor.backends.preflight import run_preflight
from advisor.backends.prepared import prepare
from advisor.models import Profile
from advisor.planner import plan_for

import json

from chat_tokenizers import save_tiny_chat_model
from conftest import alpaca_records, make_plan, run_cli, write_jsonl

#: Digits the tiny tokenizer never merged: one token each, four to a token by bytes/4.
NUMBERS = "5789" * 50


def preflight_at(tmp_path, model_dir, data, seq_len: int):
    plan = make_plan(str(model_dir), method="lora", seq_len=seq_len)
    request = ExecuteRequest(plan=plan, plan_path="plan.json", data=str(data), output_dir=str(tmp_path / "run"))
    return run_preflight(prepare(request), probe=False)


def test_the_planned_seq_len_passes_the_preflight_where_the_bytes_estimate_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model_dir = save_tiny_chat_model("llama3.1", tmp_path / "tiny-llama3")
    records = [{"messages": [{"role": "user", "content": f"{NUMBERS}{index % 10}"},
                             {"role": "assistant", "content": "it is blue"}]} for index in range(40)]
    data = write_jsonl(tmp_path / "chat.jsonl", records)

    plan = plan_for(Profile(model=str(model_dir), data=str(data), method="lora", gpu="cpu"))
    planned = plan.training.hyperparameters.seq_len
    assert preflight_at(tmp_path, model_dir, data, planned).ok

    (model_dir / "tokenizer.json").rename(model_dir / "hidden.json")  # what the planner did before: bytes/4
    estimated = plan_for(Profile(model=str(model_dir), data=str(data), method="lora", gpu="cpu"))
    (model_dir / "hidden.json").rename(model_dir / "tokenizer.json")
    assert estimated.training.hyperparameters.seq_len < planned
    refused = preflight_at(tmp_path, model_dir, data, estimated.training.hyperparameters.seq_len)
    assert not refused.ok and refused.rows_without_loss == len(records)


def test_a_planned_run_leaves_out_the_few_prompts_that_fill_its_seq_len_and_trains(tmp_path, tiny_llama, capsys):
    records = alpaca_records(48)
    long = {"instruction": " ".join(["name the colour of the sky and the sea"] * 10), "input": "", "output": "blue"}
    records[9:9] = [long]
    records[29:29] = [long]  # lines 10 and 30: 2 of 50 records, an 80-word prompt each
    data = write_jsonl(tmp_path / "alpaca.jsonl", records)
    plan_file = tmp_path / "plan.json"
    code, _, stderr = run_cli(capsys, "plan", "--model", tiny_llama, "--data", data, "--method", "lora", "--gpu", "cpu",
                              "--json", "--out", plan_file)
    assert code == 0, stderr
    plan = json.loads(plan_file.read_text())
    assert plan["training"]["hyperparameters"]["seq_len"] == 64 and plan["training"]["data"]["long_prompts"] == "drop"
    assert any(line.startswith("2 of your 50 records have a prompt of 64 tokens or more") for line in plan["warnings"])

    out = tmp_path / "run"
    code, stdout, stderr = run_cli(capsys, "execute", plan_file, "--data", data, "--output-dir", out,
                                   "--max-steps", 2, "--no-probe", "--json")
    assert code == 0, stderr
    assert "warning: 2 of 50 rows are left out" in stderr and "(line 10, 30)" in stderr
    metrics = json.loads(stdout)
    assert metrics["status"] == "completed"
    assert metrics["rows_left_out"] == 2 and metrics["left_out_lines"] == [10, 30]
    main = metrics["main"]
    assert main["train_examples"] + main["validation_examples"] + main["dropped_examples"] == 50
    assert main["dropped_examples"] == 2
