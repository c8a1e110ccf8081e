"""benchmarks/gpu_memory_harness.py runs its CPU path end to end, so it cannot rot between GPU sessions.

qlora needs CUDA (bitsandbytes) and is not exercised here.
"""

import json

import pytest

from . import scripts

harness = scripts.load("gpu_memory_harness")

TINY = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64, "max_position_embeddings": 64}
TINY_ENCODER = {"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64,
                "num_attention_heads": 4, "vocab_size": 64, "max_position_embeddings": 64}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def test_grid_appends_one_json_line_per_point(tmp_path, tiny_config):
    out = tmp_path / "runs.jsonl"
    out.write_text('{"earlier": "run"}\n')
    argv = ["--device", "cpu", "--model", str(tiny_config), "--method", "lora", "--batch", "2",
            "--seq", "8", "--steps", "2", "--out", str(out)]
    assert harness.main(argv) == 0
    earlier, record = [json.loads(line) for line in out.read_text().splitlines()]
    assert earlier == {"earlier": "run"}
    assert record["status"] == "ok" and record["tokens_per_s"] > 0 and record["model"] == "tiny"
    assert record["trainable"] == 16384  # r=16 on q, k, v, o, gate, up, down of 2 layers


@pytest.mark.parametrize(
    "method, checkpointing",
    # peft refuses prefix tuning with gradient checkpointing.
    [("full_bf16", "1"), ("full_mixed", "1"), ("freeze2", "0"), ("prompt", "1"), ("prefix", "0")],
)
def test_each_method_runs_its_recipe(tmp_path, method, checkpointing):
    args = harness.parse(["--device", "cpu", "--model", "x", "--method", method, "--batch", "2", "--seq", "8",
                          "--steps", "3", "--grad-ckpt", checkpointing])
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    point = {**next(harness.points(args)), "config": str(config)}
    record = harness.measure(point)
    assert record["status"] == "ok" and record["grad_ckpt"] is (checkpointing == "1")
    assert 0 < record["trainable"] <= record["total_params"]


def test_encoders_train_a_classifier(tmp_path):
    config = tmp_path / "encoder.json"
    config.write_text(json.dumps(TINY_ENCODER))
    args = harness.parse(["--device", "cpu", "--model", str(config), "--method", "lora", "--batch", "2",
                          "--seq", "8", "--steps", "2"])
    assert harness.measure(next(harness.points(args)))["status"] == "ok"


def test_unknown_model_stops_before_running(tmp_path):
    with pytest.raises(SystemExit, match="unknown model 'nope'"):
        harness.main(["--device", "cpu", "--model", "nope", "--method", "lora", "--batch", "1", "--seq", "8",
                      "--out", str(tmp_path / "runs.jsonl")])
