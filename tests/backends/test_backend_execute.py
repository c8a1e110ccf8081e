"""`advisor execute` end to end, a few steps: a tiny causal LM with LoRA, the embedded encoder fully fine-tuned.

Both run with HF_HUB_OFFLINE=1 and internet sockets refused (conftest), so
saving the adapter, the model card and the plot must not reach for the Hub.
"""

from __future__ import annotations

import json

from conftest import alpaca_records, banking77_sample, make_plan, run_cli, save_plan, write_jsonl


def test_lora_on_a_tiny_causal_lm_writes_every_artifact(tmp_path, tiny_llama, capsys):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(24))
    plan = save_plan(make_plan(str(tiny_llama), method="lora", learning_rate=1e-3,
                               epochs=1), tmp_path / "plan.json")
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", out, "--max-steps", 3)
    assert code == 0, stderr
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "config.json", "README.md",
                 "metrics.json", "loss.png", "plan.json", "run-manifest.json", "data/manifest.json", "progress.jsonl"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["task"] == "causal_lm"
    assert [loss["step"] for loss in metrics["main"]["losses"]] == [1, 2, 3]
    assert "token_accuracy" in metrics["main"]["final_eval"] and "perplexity" in metrics["main"]["final_eval"]
    card = (out / "README.md").read_text()
    assert "PeftModel.from_pretrained" in card and "merge_and_unload" in card and "### Response:" in card
    assert "trained" in stdout

    # The card's recipe loads it.
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama), config=AutoConfig.from_pretrained(out))
    model = PeftModel.from_pretrained(base, str(out))
    assert model.merge_and_unload() is not None


def test_embedded_encoder_classifies_banking77_and_keeps_label_names(tmp_path, capsys):
    data = banking77_sample(tmp_path / "banking.csv", labels=4, per_label=8)
    plan = make_plan("all-minilm-l6-v2", task="classification", method="full", learning_rate=1e-4,
                     param_groups=[{"name": "new", "learning_rate": 1e-3, "rule": "test"}],
                     eval_metric="accuracy", seq_len=32, data={"validation_ratio": 0.25, "stratify": True})
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(capsys, "execute", save_plan(plan, tmp_path / "plan.json"), "--data", data,
                                   "--output-dir", out, "--max-steps", 2, "--json")
    assert code == 0, stderr
    metrics = json.loads(stdout)  # --json: stdout is one JSON document, nothing else
    assert metrics["status"] == "completed"
    assert {"accuracy", "macro_f1", "loss"} <= set(metrics["main"]["final_eval"])
    assert metrics["main"]["validation_examples"] == 8

    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert sorted(model.config.id2label.values()) == metrics["label_names"]
    assert len(metrics["label_names"]) == 4
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert manifest["splits"]["validation"]["labels"] == {label: 2 for label in metrics["label_names"]}


def test_dry_run_prints_the_resolved_run_and_writes_nothing(tmp_path, tiny_llama, capsys):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(24))
    plan = make_plan(str(tiny_llama), method="lora", learning_rate=2e-4, seq_len=48, epochs=2,
                     param_groups=[{"name": "new", "learning_rate": 4e-4, "rule": "test"}])
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(capsys, "execute", save_plan(plan, tmp_path / "plan.json"), "--data", data,
                                   "--output-dir", out, "--dry-run", "--json")
    assert code == 0, stderr
    document = json.loads(stdout)
    resolved, preflight = document["run"], document["preflight"]
    assert preflight["ok"] and preflight["probe"]["ran"] and preflight["truncated_rows"] == 12
    assert resolved["method"] == "lora" and resolved["learning_rates"] == {"new": 4e-4, "pretrained": 2e-4}
    assert resolved["split"]["train"] == 18 and resolved["split"]["validation"] == 6
    assert resolved["steps_per_epoch"] == 5 and resolved["total_steps"] == 10
    assert resolved["precision"] == "fp32" and resolved["truncated"] == 12 and resolved["dropped"] == 0
    assert not out.exists()


def test_dry_run_without_probe_checks_the_data_but_runs_no_step(tmp_path, tiny_llama, capsys):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(24))
    plan = make_plan(str(tiny_llama), method="lora", learning_rate=2e-4, seq_len=48, epochs=2)
    code, stdout, stderr = run_cli(capsys, "execute", save_plan(plan, tmp_path / "plan.json"), "--data", data,
                                   "--output-dir", tmp_path / "run", "--dry-run", "--no-probe", "--json")
    assert code == 0, stderr
    preflight = json.loads(stdout)["preflight"]
    assert preflight["ok"] and not preflight["probe"]["ran"] and preflight["truncated_rows"] == 12


def test_embedded_encoder_dry_run_is_offline_and_probes_the_longest_batch(tmp_path, capsys):
    data = banking77_sample(tmp_path / "banking.csv", labels=4, per_label=8)
    plan = make_plan("all-minilm-l6-v2", task="classification", method="full", learning_rate=1e-4,
                     eval_metric="accuracy", seq_len=32, data={"validation_ratio": 0.25, "stratify": True})
    code, stdout, stderr = run_cli(capsys, "execute", save_plan(plan, tmp_path / "plan.json"), "--data", data,
                                   "--output-dir", tmp_path / "run", "--dry-run", "--json")
    assert code == 0, stderr
    preflight = json.loads(stdout)["preflight"]
    assert preflight["ok"] and preflight["probe"]["ran"] and preflight["preview"]
    assert not (tmp_path / "run").exists()
