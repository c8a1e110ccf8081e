"""Launch files for several machines: the accelerate config, per-node commands, Slurm and SkyPilot files.

A plan for 2 nodes x 8 GPUs is written with `execute --backend accelerate
--dry-run` on this CPU machine; accelerate's own loader and launch-argument
checks read the config as `accelerate launch` on machine 1 would.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from advisor.models import Estimate, MemoryEstimate

from conftest import alpaca_records, make_plan, run_cli, save_plan, write_jsonl


def cluster_plan(model: str, sharding: str, nodes: int = 2, gpus: int = 8, method: str = "full", offload: str = "none",
                 gpu: str = "h100"):
    plan = make_plan(model, method=method, precision="bf16", gradient_accumulation_steps=4)
    plan.profile.gpu, plan.profile.num_gpus, plan.profile.num_nodes = gpu, gpus, nodes
    plan.estimate = Estimate(memory=MemoryEstimate(peak_gib=10.0, per_device_gib=10.0),
                             config={"sharding": sharding, "num_gpus": gpus, "num_nodes": nodes, "offload": offload})
    return plan


@pytest.fixture
def alpaca(tmp_path):
    return write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(12))


@pytest.fixture
def cuda_methods_here(monkeypatch):
    """The cluster has the GPUs; this CPU machine only writes the files (a real run still checks)."""
    monkeypatch.setattr("advisor.backends.prepared.check_method_runs_here", lambda method, device: None)


def write_files(capsys, tmp_path, plan, data, *extra):
    out = tmp_path / "launch"
    code, stdout, stderr = run_cli(capsys, "execute", save_plan(plan, tmp_path / "plan.json"), "--data", data,
                                   "--output-dir", out, "--backend", "accelerate", "--dry-run", *extra)
    return code, stdout, stderr, out


def accelerate_args(out, machine_rank: int = 1):
    """The arguments `accelerate launch` on machine `machine_rank` ends with, after its own checks of the config."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    argv = ["--config_file", str(out / "accelerate_config.yaml"), "--machine_rank", str(machine_rank),
            "--main_process_ip", "10.0.0.1", "--main_process_port", "29500", str(out / "train.py")]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
    return args


def config_of(out) -> dict:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    assert isinstance(load_config_from_file(str(out / "accelerate_config.yaml")), ClusterConfig)
    return yaml.safe_load((out / "accelerate_config.yaml").read_text())


def test_hybrid_sharding_on_two_nodes_is_accelerates_hsdp_mesh(tmp_path, tiny_llama, alpaca, capsys):
    code, stdout, stderr, out = write_files(capsys, tmp_path, cluster_plan(str(tiny_llama), "hybrid"), alpaca, "--json")
    assert code == 0, stderr
    config = config_of(out)
    assert config["num_machines"] == 2 and config["num_processes"] == 16  # accelerate counts every machine's
    assert config["distributed_type"] == "FSDP" and config["fsdp_config"]["fsdp_version"] == 2
    assert config["parallelism_config"] == {"parallelism_config_dp_replicate_size": 2,
                                            "parallelism_config_dp_shard_size": 8}
    args = accelerate_args(out)
    # What accelerate launch hands torchrun and the processes: 8 per node, the replicate x shard mesh.
    assert args.use_fsdp and args.use_parallelism_config and args.num_machines == 2 and args.machine_rank == 1
    assert (args.parallelism_config_dp_replicate_size, args.parallelism_config_dp_shard_size) == (2, 8)
    described = json.loads(stdout)
    assert described["num_machines"] == 2 and described["num_processes"] == 16
    assert described["node_commands"] == [f"MACHINE_RANK={rank} bash {out / 'launch.sh'}" for rank in (0, 1)]


def test_each_node_launches_with_its_rank_and_the_main_address(tmp_path, tiny_llama, alpaca, capsys):
    code, stdout, stderr, out = write_files(capsys, tmp_path, cluster_plan(str(tiny_llama), "fsdp"), alpaca)
    assert code == 0, stderr
    launch = out / "launch.sh"
    subprocess.run(["bash", "-n", launch], check=True)
    text = launch.read_text()
    assert ('accelerate launch --config_file accelerate_config.yaml --machine_rank "$MACHINE_RANK" '
            '--main_process_ip "$MAIN_PROCESS_IP" --main_process_port "$MAIN_PROCESS_PORT" train.py "$@"') in text
    # The data is tokenised once, on machine 0, before its launch.
    assert 'if [ "$MACHINE_RANK" = 0 ] && [ ! -d tokenized ]; then python train.py --prepare-only; fi' in text
    assert text.index("--prepare-only") < text.index("accelerate launch")
    assert "machine 0: MACHINE_RANK=0 bash" in stdout and "machine 1: MACHINE_RANK=1 bash" in stdout
    # Without the main machine's address, a node says so instead of waiting for 127.0.0.1.
    refused = subprocess.run(["bash", launch], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert refused.returncode != 0 and "set MAIN_PROCESS_IP to the address of machine 0" in refused.stderr


def test_one_machine_keeps_the_plain_launch(tmp_path, tiny_llama, alpaca, capsys):
    code, stdout, stderr, out = write_files(capsys, tmp_path, cluster_plan(str(tiny_llama), "fsdp", nodes=1), alpaca,
                                            "--json")
    assert code == 0, stderr
    assert config_of(out)["num_machines"] == 1
    text = (out / "launch.sh").read_text()
    assert 'exec accelerate launch --config_file accelerate_config.yaml train.py "$@"' in text
    assert "if [ ! -d tokenized ]; then python train.py --prepare-only; fi" in text
    assert json.loads(stdout)["node_commands"] == [f"bash {out / 'launch.sh'}"]


def test_slurm_script_runs_one_launch_per_node(tmp_path, tiny_llama, alpaca, capsys):
    code, _, stderr, out = write_files(capsys, tmp_path, cluster_plan(str(tiny_llama), "hybrid", nodes=4), alpaca)
    assert code == 0, stderr
    sbatch = out / "launch.sbatch"
    subprocess.run(["bash", "-n", sbatch], check=True)
    text = sbatch.read_text()
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8",
                 f"#SBATCH --chdir={out.resolve()}", "#SBATCH --partition=FILL_IN_PARTITION"):
        assert line in text.splitlines()
    assert "Fill in: the partition" in text  # the one value a user must give, said in the header
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1' in text
    assert "MACHINE_RANK=$SLURM_NODEID exec bash launch.sh" in text
    # Tokenised once on the first node, before srun starts any rank.
    assert text.index("python train.py --prepare-only") < text.index("srun ")


def test_skypilot_task_names_the_accelerator_nodes_and_data(tmp_path, tiny_llama, alpaca, capsys):
    code, _, stderr, out = write_files(capsys, tmp_path, cluster_plan(str(tiny_llama), "fsdp", gpu="a100-80gb"), alpaca)
    assert code == 0, stderr
    text = (out / "sky.yaml").read_text()
    task = yaml.safe_load(text)
    assert task["num_nodes"] == 2 and task["resources"]["accelerators"] == "A100-80GB:8"
    assert task["workdir"] == str(out.resolve())
    assert task["file_mounts"] == {"/advisor-data/alpaca.jsonl": str(alpaca.resolve())}
    assert task["envs"]["ADVISOR_DATA"] == "/advisor-data/alpaca.jsonl"
    run = task["run"]
    assert 'MACHINE_RANK="$SKYPILOT_NODE_RANK"' in run and '"$SKYPILOT_NODE_IPS" | head -n 1' in run
    assert "$SKYPILOT_NUM_GPUS_PER_NODE" in run and run.rstrip().endswith("bash launch.sh")
    assert run.index("--prepare-only") < run.index("bash launch.sh")
    assert "Fill in: resources.cloud" in text
    subprocess.run(["bash", "-n", "-c", run], check=True)
    # train.py reads the data where the task mounts it.
    assert 'os.environ.get("ADVISOR_DATA")' in (out / "train.py").read_text()


@pytest.mark.parametrize(("sharding", "offload", "expected"), [
    ("fsdp", "parameters", {"fsdp_offload_params": True}),
    ("fsdp", "optimizer", {"fsdp_offload_params": True}),
    ("zero3", "parameters", {"offload_optimizer_device": "cpu", "offload_param_device": "cpu"}),
    ("zero2", "optimizer", {"offload_optimizer_device": "cpu", "offload_param_device": "none"}),
])
def test_offload_is_written_as_the_sharding_engine_spells_it(tmp_path, tiny_llama, alpaca, capsys, monkeypatch,
                                                            sharding, offload, expected):
    monkeypatch.setattr("advisor.backends.accelerate.deepspeed_installed", lambda: True)
    plan = cluster_plan(str(tiny_llama), sharding, offload=offload)
    code, _, stderr, out = write_files(capsys, tmp_path, plan, alpaca)
    assert code == 0, stderr
    config = config_of(out)
    section = config["fsdp_config"] if sharding == "fsdp" else config["deepspeed_config"]
    assert {key: section[key] for key in expected} == expected
    if offload == "optimizer" and sharding == "fsdp":
        assert "no optimizer-only offload" in stderr


def test_fsdp_shards_a_4bit_base(tmp_path, tiny_llama, alpaca, capsys, cuda_methods_here):
    plan = cluster_plan(str(tiny_llama), "hybrid", method="qlora")
    code, _, stderr, out = write_files(capsys, tmp_path, plan, alpaca)
    assert code == 0, stderr
    config = config_of(out)
    assert config["distributed_type"] == "FSDP" and config["fsdp_config"]["fsdp_cpu_ram_efficient_loading"] is True


def test_qlora_loads_its_4bit_weights_in_a_float_storage_fsdp_can_shard():
    import torch

    from advisor.manager import get_method
    from advisor.precision import resolve_dtypes

    qlora = get_method("qlora")
    options = qlora.load_options(qlora.hyperparameters({}), resolve_dtypes("bf16", cuda=True, bf16=True, frozen_base=True))
    quantization = options["quantization_config"]
    assert quantization.bnb_4bit_quant_storage == torch.bfloat16 == quantization.bnb_4bit_compute_dtype
    assert options["device_map"] == {"": 0}  # the process's local rank; 0 outside a launch


def test_offline_dry_run_of_an_uncached_catalog_model_writes_every_file(tmp_path, alpaca, capsys, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # nothing cached; HF_HUB_OFFLINE=1 (conftest)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    plan = cluster_plan("llama-3.1-8b", "hybrid", method="qlora")
    code, stdout, stderr, out = write_files(capsys, tmp_path, plan, alpaca, "--json")
    assert code == 0, stderr
    names = {"accelerate_config.yaml", "launch.sh", "train.py", "launch.sbatch", "sky.yaml", "plan.json"}
    assert names <= {path.name for path in out.iterdir()}
    notes = [line for line in stderr.splitlines() if "is not here" in line]
    assert len(notes) == 1 and "token lengths" in notes[0] and "decoded preview" in notes[0]
    assert "--prepare-only" in notes[0]
    described = json.loads(stdout)
    assert described["wrap_class"] == "LlamaDecoderLayer"  # from the architecture, no weights needed
    compile((out / "train.py").read_text(), "train.py", "exec")


def test_offline_run_of_an_uncached_model_is_still_refused(tmp_path, alpaca, capsys, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    plan = cluster_plan("llama-3.1-8b", "fsdp", gpu="cpu", nodes=1, gpus=1)
    code, _, stderr = run_cli(capsys, "execute", save_plan(plan, tmp_path / "plan.json"), "--data", alpaca,
                              "--output-dir", tmp_path / "out", "--dry-run")
    assert code == 2 and "not in the local cache" in stderr


def test_an_unreachable_hub_is_one_line_then_the_files(tmp_path, alpaca, capsys, monkeypatch):
    from advisor.backends.loading import hub_reachable

    monkeypatch.delenv("HF_HUB_OFFLINE")  # not told: the probe decides (conftest refuses every connection)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    hub_reachable.cache_clear()
    plan = cluster_plan("qwen2.5-7b", "fsdp")
    code, _, stderr, out = write_files(capsys, tmp_path, plan, alpaca)
    hub_reachable.cache_clear()
    assert code == 0, stderr
    assert stderr.count("is not reachable; working offline") == 1
    assert (out / "sky.yaml").is_file() and "Qwen2DecoderLayer" in (out / "accelerate_config.yaml").read_text()
