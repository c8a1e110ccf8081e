"""The seq_len `plan --data` derives from the model's tokenizer.json is one the preflight accepts for the same data.

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

from chat_tokenizers import save_tiny_chat_model
from conftest import make_plan, write_jsonl

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
