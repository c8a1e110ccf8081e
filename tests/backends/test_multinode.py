"""Two "machines" on localhost: the per-node commands of a 2-node plan, run for real (CPU, gloo).

`advisor execute --backend accelerate --dry-run` writes the files of a plan
for 2 nodes x 1 process; the test then runs the two node commands it printed
at once, as two machines would, each an `accelerate launch` with
num_machines 2, its own machine rank, and 127.0.0.1 as the main machine.
They train a tiny Llama a few steps with FSDP2 across the two, write sharded
checkpoints, and save the model whole, which plain transformers loads. In the
second test the run stops after step 3 and one process resumes the two
machines' checkpoint. Measured on the shared, loaded 2-core machine: 136 s for
the first test (two launches at once, 3 Python processes each, and the
tokenising step), 267 s for both.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from advisor.models import Estimate, MemoryEstimate

from conftest import alpaca_records, make_plan, save_plan, write_jsonl
from test_distributed import LAUNCH_TIMEOUT_S, STEPS, assert_full_model_loads, completed, run
from test_distributed import launch_env  # noqa: F401  (a fixture the tests take)

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_node_plan(model, method: str = "full"):
    plan = make_plan(str(model), method=method, batch_size=2, gradient_checkpointing=True)
    plan.profile.num_gpus, plan.profile.num_nodes = 1, 2  # gpu "cpu": one process on each "machine"
    plan.estimate = Estimate(memory=MemoryEstimate(peak_gib=0.1, per_device_gib=0.1),
                             config={"sharding": "fsdp", "num_gpus": 1, "num_nodes": 2})
    return plan


def write_launch_files(tmp_path, env, plan, data, out) -> list[str]:
    """`execute --backend accelerate --dry-run`: the files, and the command for each machine."""
    written = run([sys.executable, "-m", "advisor", "execute", save_plan(plan, tmp_path / "plan.json"), "--data", data,
                   "--output-dir", out, "--backend", "accelerate", "--dry-run", "--json", "--max-steps", STEPS,
                   "--save-steps", 2], env)
    assert written.returncode == 0, written.stderr[-3000:]
    commands = json.loads(written.stdout)["node_commands"]
    assert len(commands) == 2
    return commands


def run_nodes(commands: list[str], env: dict) -> list[subprocess.CompletedProcess]:
    """Start every node's command at once (they meet at the rendezvous); a hang stops them all and fails."""
    nodes = [subprocess.Popen(["bash", "-c", command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) for command in commands]
    results = []
    try:
        for command, node in zip(commands, nodes):
            stdout, stderr = node.communicate(timeout=LAUNCH_TIMEOUT_S)
            results.append(subprocess.CompletedProcess(command, node.returncode, stdout, stderr))
    except subprocess.TimeoutExpired:
        for node in nodes:
            os.killpg(node.pid, signal.SIGKILL)
        pytest.fail(f"the two-node launch hung for {LAUNCH_TIMEOUT_S} s")
    return results


@pytest.fixture
def data(tmp_path):
    return write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(16))


@pytest.fixture
def node_env(launch_env):
    """Both "machines" reach machine 0 at 127.0.0.1, on a port free here."""
    return dict(launch_env, MAIN_PROCESS_IP="127.0.0.1", MAIN_PROCESS_PORT=str(free_port()))


def test_two_machines_on_localhost_train_and_save_a_whole_model(tmp_path, tiny_llama, data, node_env):
    out = tmp_path / "out"
    commands = write_launch_files(tmp_path, node_env, two_node_plan(tiny_llama), data, out)
    for node in run_nodes(commands, node_env):
        assert node.returncode == 0, node.stderr[-3000:]
    completed(out)
    assert (out / "tokenized").is_dir()  # tokenised once, on machine 0, before the launch
    # Sharded checkpoints: one file per process, across the two machines; the saved model whole.
    checkpoint = out / "checkpoints" / f"checkpoint-{STEPS}"
    assert sorted(p.name for p in (checkpoint / "pytorch_model_fsdp_0").glob("*.distcp")) == \
        ["__0_0.distcp", "__1_0.distcp"]
    assert_full_model_loads(out, tiny_llama)


def test_one_process_resumes_what_two_machines_checkpointed(tmp_path, tiny_llama, data, node_env):
    """The process on machine 1 runs out of memory after step 3 (the test plugin of test_distributed.py), which
    stops both; one process then resumes their sharded checkpoint of step 2 (resume on another number of
    processes: backends/checkpoints.py) and trains on to step 4."""
    out = tmp_path / "out"
    plan = two_node_plan(tiny_llama, "oom-full")
    commands = write_launch_files(tmp_path, node_env, plan, data, out)
    stopped = run_nodes(commands, node_env)
    assert any(node.returncode != 0 for node in stopped)
    assert (out / "checkpoints" / "checkpoint-2" / "pytorch_model_fsdp_0").is_dir()
    assert not (out / "checkpoints" / "checkpoint-4").exists()

    resumed = run([sys.executable, "-m", "advisor", "execute", tmp_path / "plan.json", "--data", data,
                   "--output-dir", out, "--resume", "--max-steps", STEPS, "--save-steps", 2], node_env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming a 2-process checkpoint on 1 process" in resumed.stderr
    completed(out)
    progress = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in progress if "loss" in entry][-2:] == [3, 4]
    assert_full_model_loads(out, tiny_llama)
