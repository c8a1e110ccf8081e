"""The generated accelerate files run for real: 2 CPU processes (gloo), DDP and FSDP2, LoRA and full fine-tuning.

A plan for `--gpu cpu` with num_gpus=2 gets a 2-process config; `advisor
execute --backend accelerate` writes it and runs the generated launch.sh,
which starts the processes with `accelerate launch` (torchrun). Each run
trains a tiny Llama a few steps, and its output loads with plain
transformers / peft. The out-of-memory case uses a third-party method plugin
(launch_plugin/advisor_test_oom.py, found through a dist-info on PYTHONPATH,
as an installed plugin is): process 1 runs out of memory after step 3, every
process stops with one error line, and `bash launch.sh --resume` finishes the
run from the checkpoint of step 2.

Each launch starts three Python processes that import torch and transformers;
measured on a shared, loaded 2-core machine: 70-130 s for one launch, 110-195 s
for the out-of-memory run and its resume. Slow tests: CI runs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.models import Estimate, MemoryEstimate

from conftest import alpaca_records, make_plan, save_plan, write_jsonl

pytestmark = pytest.mark.slow

PLUGIN_DIR = Path(__file__).parent / "launch_plugin"
#: Generous: a loaded CI machine; a hang (processes waiting in a collective) is what it catches.
LAUNCH_TIMEOUT_S = 900
STEPS = 4


def two_process_plan(model: Path, method: str, sharding: str):
    plan = make_plan(str(model), method=method, batch_size=2, gradient_checkpointing=True)
    plan.profile.num_gpus = 2  # with gpu "cpu": two CPU processes
    plan.estimate = Estimate(memory=MemoryEstimate(peak_gib=0.1, per_device_gib=0.1),
                             config={"sharding": sharding, "num_gpus": 2})
    return plan


@pytest.fixture
def launch_env(tmp_path):
    """The environment of a launch: offline, this venv's `accelerate` first, the test plugin importable."""
    site = tmp_path / "site"
    dist_info = site / "advisor_test_oom-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: advisor-test-oom\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[advisor]\noom = advisor_test_oom\n")
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        PYTHONPATH=os.pathsep.join([str(site), str(PLUGIN_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        ADVISOR_TEST_OOM_MARKER=str(tmp_path / "out-of-memory-raised"),
    )
    return env


def run(command: list, env: dict) -> subprocess.CompletedProcess:
    """Run a launch to its end; on a hang, stop its whole process group and fail."""
    process = subprocess.Popen([str(part) for part in command], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the launch hung for {LAUNCH_TIMEOUT_S} s:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def execute(tmp_path, env, plan, data, out, *extra) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "advisor", "execute", save_plan(plan, tmp_path / "plan.json"), "--data", data,
                "--output-dir", out, "--backend", "accelerate", "--max-steps", STEPS, "--save-steps", 2, *extra], env)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def completed(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["main"]["steps"] == STEPS
    return metrics


def assert_full_model_loads(out: Path, base: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    trained, original = AutoModelForCausalLM.from_pretrained(out), AutoModelForCausalLM.from_pretrained(base)
    original_weights = original.state_dict()
    # Every tensor whole (the same shapes as the base: not a shard) and trained.
    assert {k: v.shape for k, v in trained.state_dict().items()} == {k: v.shape for k, v in original_weights.items()}
    assert any(not torch.equal(v, original_weights[k]) for k, v in trained.state_dict().items())
    assert torch.isfinite(trained(torch.tensor([[2, 5, 6, 7]])).logits).all()


def assert_adapter_loads(out: Path, base: Path) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    adapter = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [tensor for key, tensor in adapter.items() if "lora_B" in key]
    assert lora_b and all(tensor.abs().sum() > 0 for tensor in lora_b)  # B starts at zero: these were trained
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out)
    assert torch.isfinite(model(input_ids=torch.tensor([[2, 5, 6, 7]])).logits).all()


def assert_saved_model_loads(out: Path, base: Path, method: str) -> None:
    if method.endswith("lora"):
        assert_adapter_loads(out, base)
    else:
        assert_full_model_loads(out, base)


@pytest.fixture
def alpaca(tmp_path):
    return write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(16))


@pytest.mark.parametrize(("sharding", "method"), [("ddp", "full"), ("fsdp", "lora")])
def test_two_processes_train_and_save_a_whole_model(tmp_path, tiny_llama, alpaca, launch_env, sharding, method):
    out = tmp_path / "out"
    result = execute(tmp_path, launch_env, two_process_plan(tiny_llama, method, sharding), alpaca, out)
    assert result.returncode == 0, result.stderr[-3000:]
    config = (out / "accelerate_config.yaml").read_text()
    assert "num_processes: 2" in config and "use_cpu: true" in config
    completed(out)
    checkpoint = out / "checkpoints" / f"checkpoint-{STEPS}"
    if sharding == "fsdp":
        # Checkpoints sharded (one file per process); the saved model whole.
        assert sorted(p.name for p in (checkpoint / "pytorch_model_fsdp_0").glob("*.distcp")) == \
            ["__0_0.distcp", "__1_0.distcp"]
    assert_saved_model_loads(out, tiny_llama, method)


@pytest.mark.parametrize(("sharding", "method", "resume_with"),
                         [("ddp", "lora", "launch.sh"), ("fsdp", "full", "advisor execute")])
def test_out_of_memory_in_one_process_stops_all_then_resume_finishes(
    tmp_path, tiny_llama, alpaca, launch_env, sharding, method, resume_with,
):
    out = tmp_path / "out"
    plan = two_process_plan(tiny_llama, f"oom-{method}", sharding)
    failed = execute(tmp_path, launch_env, plan, alpaca, out)
    assert failed.returncode != 0
    errors = error_lines(failed.stderr)
    assert len(errors) == 1, failed.stderr[-3000:]
    assert "out of memory at step 3 of main in process 1 of 2" in errors[0] and "plan a smaller" in errors[0]
    # No process printed a traceback: the one line is the whole story (torchrun's own summary follows it).
    assert "[rank0]: Traceback" not in failed.stderr and "[rank1]: Traceback" not in failed.stderr
    assert (out / "checkpoints" / "checkpoint-2").is_dir() and not (out / "checkpoints" / "checkpoint-4").exists()

    if resume_with == "launch.sh":
        resumed = run(["bash", out / "launch.sh", "--resume"], launch_env)
    else:
        resumed = execute(tmp_path, launch_env, plan, alpaca, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = completed(out)
    # Continued from the checkpoint of step 2 (steps 3 and 4 trained again), not from the start.
    progress = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    trained_steps = [entry["step"] for entry in progress if "loss" in entry]
    assert trained_steps.count(1) == 1 and trained_steps[-2:] == [3, 4], trained_steps
    assert [loss["step"] for loss in metrics["main"]["losses"]] == [1, 2, 3, 4]
    assert_saved_model_loads(out, tiny_llama, method)
