"""`--backend accelerate --dry-run`: the generated accelerate config, launch command and training script."""

from __future__ import annotations

import json

import pytest
import yaml

from advisor.models import Estimate, MemoryEstimate

from conftest import alpaca_records, banking77_sample, make_plan, run_cli, save_plan, write_jsonl


def sharded_plan(model: str, sharding: str, method: str = "full", task: str = "instruction", gpus: int = 4,
                 **hyperparameters):
    plan = make_plan(model, task=task, method=method, precision="bf16", gradient_accumulation_steps=4,
                     **hyperparameters)
    plan.profile.gpu, plan.profile.num_gpus = "a100-80gb", gpus
    plan.estimate = Estimate(memory=MemoryEstimate(peak_gib=10.0, per_device_gib=10.0),
                             config={"sharding": sharding, "num_gpus": gpus})
    return plan


def dry_run(capsys, tmp_path, plan, data, *extra):
    out = tmp_path / "launch"
    code, stdout, stderr = run_cli(capsys, "execute", save_plan(plan, tmp_path / "plan.json"), "--data", data,
                                   "--output-dir", out, "--backend", "accelerate", "--dry-run", *extra)
    return code, stdout, stderr, out


@pytest.fixture
def alpaca(tmp_path):
    return write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(12))


def config_of(out):
    from accelerate.commands.config.config_args import load_config_from_file

    load_config_from_file(str(out / "accelerate_config.yaml"))  # accelerate itself accepts it
    return yaml.safe_load((out / "accelerate_config.yaml").read_text())


def test_fsdp_wraps_the_decoder_layer_class_read_from_the_model(tmp_path, tiny_llama, alpaca, capsys):
    code, stdout, stderr, out = dry_run(capsys, tmp_path, sharded_plan(str(tiny_llama), "fsdp"), alpaca, "--json")
    assert code == 0, stderr
    config = config_of(out)
    assert config["distributed_type"] == "FSDP" and config["num_processes"] == 4
    assert config["mixed_precision"] == "bf16"
    assert config["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    assert config["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    described = json.loads(stdout)
    assert described["wrap_class"] == "LlamaDecoderLayer" and described["command"].startswith("bash ")
    launch = (out / "launch.sh").read_text()
    assert "accelerate launch --config_file accelerate_config.yaml train.py" in launch
    assert "HF_HUB_OFFLINE=1" in launch
    script = (out / "train.py").read_text()
    compile(script, "train.py", "exec")
    assert repr(str(alpaca.resolve())) in script and "run_generated" in script
    assert json.loads((out / "plan.json").read_text())["training"]["method"] == "full"
    assert not (out / "metrics.json").exists()  # a dry run trains nothing


def test_an_encoder_without_no_split_modules_still_gets_its_layer_class(tmp_path, capsys):
    data = banking77_sample(tmp_path / "banking.csv", labels=3, per_label=4)
    plan = sharded_plan("all-minilm-l6-v2", "fsdp", task="classification")
    code, _, stderr, out = dry_run(capsys, tmp_path, plan, data)
    assert code == 0, stderr
    assert config_of(out)["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "BertLayer"


def test_ddp_for_a_plan_that_replicates(tmp_path, tiny_llama, alpaca, capsys):
    code, _, stderr, out = dry_run(capsys, tmp_path, sharded_plan(str(tiny_llama), "ddp", gpus=2), alpaca)
    assert code == 0, stderr
    config = config_of(out)
    assert config["distributed_type"] == "MULTI_GPU" and config["num_processes"] == 2
    assert "fsdp_config" not in config and "deepspeed_config" not in config


def test_zero3_without_deepspeed_installed_falls_back_to_fsdp_and_says_so(tmp_path, tiny_llama, alpaca, capsys):
    import importlib.util

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here: the plan keeps ZeRO-3")
    code, _, stderr, out = dry_run(capsys, tmp_path, sharded_plan(str(tiny_llama), "zero3"), alpaca)
    assert code == 0, stderr
    assert config_of(out)["distributed_type"] == "FSDP"
    assert "deepspeed is not installed" in stderr


def test_a_4bit_base_is_sharded_by_fsdp_not_deepspeed(tmp_path, tiny_llama, alpaca, capsys, monkeypatch):
    from advisor.backends import hardware

    # The launch files are for the cluster's GPUs; a real run still checks CUDA where it runs.
    monkeypatch.setattr(hardware, "check_method_runs_here", lambda method, device: None)
    monkeypatch.setattr("advisor.backends.prepared.check_method_runs_here", lambda method, device: None)
    code, _, stderr, out = dry_run(capsys, tmp_path, sharded_plan(str(tiny_llama), "fsdp", method="qlora"), alpaca)
    assert code == 0, stderr
    assert config_of(out)["distributed_type"] == "FSDP"
    monkeypatch.setattr("advisor.backends.accelerate.deepspeed_installed", lambda: True)
    (tmp_path / "zero3").mkdir()
    code, _, stderr, out = dry_run(capsys, tmp_path / "zero3", sharded_plan(str(tiny_llama), "zero3", method="qlora"),
                                   alpaca)
    assert code == 2 and "not with DeepSpeed ZeRO" in stderr and "plan.json estimate.config.sharding" in stderr
    assert not out.exists()


@pytest.mark.slow
def test_accelerate_launch_runs_the_generated_files(tmp_path, tiny_llama, alpaca, capsys, monkeypatch):
    import os
    import sys

    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "launched"
    plan = save_plan(make_plan(str(tiny_llama)), tmp_path / "plan.json")
    code, _, stderr = run_cli(capsys, "execute", plan, "--data", alpaca, "--output-dir", out,
                              "--backend", "accelerate", "--max-steps", 2)
    assert code == 0, stderr
    assert json.loads((out / "metrics.json").read_text())["main"]["steps"] == 2
    assert (out / "train.py").is_file() and (out / "model.safetensors").is_file()


def test_the_preflight_data_checks_refuse_before_any_launch_file_is_written(tmp_path, tiny_llama, alpaca, capsys):
    plan = make_plan(str(tiny_llama), seq_len=8)  # the Alpaca prompt alone is longer: nothing left to learn
    code, _, stderr, out = dry_run(capsys, tmp_path, plan, alpaca)
    assert code == 1 and "no token carries loss" in stderr
    assert not out.exists()


@pytest.mark.parametrize(("sharding", "distributed_type"), [("ddp", "MULTI_GPU"), ("fsdp", "FSDP")])
def test_a_cpu_plan_for_two_devices_gets_two_cpu_processes(tmp_path, tiny_llama, alpaca, capsys, sharding,
                                                            distributed_type):
    plan = sharded_plan(str(tiny_llama), sharding, gpus=2)
    plan.profile.gpu = "cpu"
    code, _, stderr, out = dry_run(capsys, tmp_path, plan, alpaca)
    assert code == 0, stderr
    config = config_of(out)
    # accelerate launch starts N processes (torchrun) only for a multi-device type; use_cpu makes them CPU ones.
    assert config["distributed_type"] == distributed_type and config["num_processes"] == 2
    assert config["use_cpu"] is True and config["mixed_precision"] == "no"
    assert "2 CPU processes over gloo" in stderr


def test_fsdp_leaves_activation_checkpointing_to_the_trainer(tmp_path, tiny_llama, alpaca, capsys):
    plan = sharded_plan(str(tiny_llama), "fsdp", gradient_checkpointing=True)
    code, _, stderr, out = dry_run(capsys, tmp_path, plan, alpaca)
    assert code == 0, stderr
    fsdp = config_of(out)["fsdp_config"]
    # transformers refuses both switches on; the Trainer's is the plan's (and peft saves what it wraps).
    assert fsdp["fsdp_activation_checkpointing"] is False
    assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"  # checkpoints; the final save is gathered whole
    assert fsdp["fsdp_cpu_ram_efficient_loading"] is True and fsdp["fsdp_sync_module_states"] is True
