"""What a run prints reads well: the resolved run before the first step, counts in words, the launch config."""

import pytest

from advisor.backends.accelerate import LaunchFiles, launch_words, training_script
from advisor.backends.describe import plural, resolved_run
from advisor.backends.models import ExecuteRequest, TrainShape
from advisor.backends.prepared import prepare
from advisor.backends.trainer_setup import make_schedule
from advisor.models import Estimate, MemoryEstimate
from conftest import alpaca_records, make_plan, run_cli, save_plan, write_jsonl


@pytest.mark.slow  # a real (tiny) run: ~40 s on a shared CPU
def test_a_real_run_prints_the_resolved_run_before_it_trains(tmp_path, tiny_llama, capsys):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(12))
    plan = save_plan(make_plan(str(tiny_llama)), tmp_path / "plan.json")
    code, stdout, stderr = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", tmp_path / "run",
                              "--max-steps", 1, "--save-steps", 1, "--no-probe")
    assert code == 0, stderr
    assert "model      " in stderr and "schedule   " in stderr and "checkpoint every step;" in stderr
    assert stdout.startswith("trained ")


def test_counts_read_as_words():
    assert plural(1, "step") == "step" and plural(5, "step") == "5 steps"


def test_the_launch_config_is_described_in_words():
    files = LaunchFiles(config="c", launch="l", script="s", command="", distributed_type="NO", num_processes=1,
                        mixed_precision="no", wrap_class=None, notes=[])
    assert launch_words(files) == "no distribution, 1 process, full precision"
    sharded = files.model_copy(update={"distributed_type": "FSDP", "num_processes": 4, "mixed_precision": "bf16",
                                       "wrap_class": "LlamaDecoderLayer"})
    assert launch_words(sharded) == "FSDP sharding, 4 processes, bf16 mixed precision, wraps LlamaDecoderLayer"


def test_the_launch_words_name_machines_hybrid_sharding_offload_and_the_fused_loss():
    files = LaunchFiles(config="c", launch="l", script="s", command="", distributed_type="FSDP", num_processes=16,
                        num_machines=2, mixed_precision="bf16", wrap_class="LlamaDecoderLayer", hybrid=True,
                        offload="parameters", fused_loss=True)
    assert launch_words(files) == ("FSDP hybrid sharding, 2 machines x 8 processes, bf16 mixed precision, wraps "
                                   "LlamaDecoderLayer, parameters, gradients and optimizer states in CPU memory, "
                                   "fused cross-entropy")


def two_node_plan(model: str, offload: str = "parameters", fused: bool = True):
    plan = make_plan(model, precision="bf16", gradient_accumulation_steps=4, fused_cross_entropy=fused)
    plan.profile.gpu, plan.profile.num_gpus, plan.profile.num_nodes = "h100", 8, 2
    plan.estimate = Estimate(memory=MemoryEstimate(peak_gib=10.0, per_device_gib=10.0),
                             config={"sharding": "hybrid", "num_gpus": 8, "num_nodes": 2, "offload": offload})
    return plan


def test_the_resolved_run_has_a_line_each_for_the_devices_sharding_offload_and_loss(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(8))
    request = ExecuteRequest(plan=two_node_plan(str(tiny_llama)), plan_path="plan.json", data=str(data),
                             output_dir=str(tmp_path / "run"))
    lines = resolved_run(prepare(request)).text().splitlines()
    assert "devices    2 nodes x 8 h100" in lines
    assert "sharding   FSDP hybrid sharding (sharded within each node, replicated across nodes)" in lines
    assert "offload    parameters, gradients and optimizer states in CPU memory" in lines
    assert any(line.startswith("loss       fused LM head + cross-entropy") for line in lines)


def test_a_one_device_run_has_no_layout_lines(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(8))
    request = ExecuteRequest(plan=make_plan(str(tiny_llama)), plan_path="plan.json", data=str(data),
                             output_dir=str(tmp_path / "run"))
    text = resolved_run(prepare(request)).text()
    assert not any(line.split(" ")[0] in ("devices", "sharding", "offload", "loss") for line in text.splitlines())


def test_the_accelerate_dry_run_says_the_layout_in_words(tmp_path, tiny_llama, capsys):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(12))
    plan = save_plan(two_node_plan(str(tiny_llama)), tmp_path / "plan.json")
    code, stdout, stderr = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", tmp_path / "launch",
                                   "--backend", "accelerate", "--dry-run")
    assert code == 0, stderr
    assert ("(FSDP hybrid sharding, 2 machines x 8 processes, bf16 mixed precision, wraps LlamaDecoderLayer, "
            "parameters, gradients and optimizer states in CPU memory, fused cross-entropy)") in stdout


def test_every_process_takes_its_own_micro_batches_so_the_schedule_counts_them_all():
    hp = make_plan("m").training.hyperparameters
    shape = TrainShape(batch_size=4, gradient_accumulation_steps=4, gradient_checkpointing=False)
    one, sixteen = (make_schedule(1000, shape, hp, True, processes=processes) for processes in (1, 16))
    assert (one.steps_per_epoch, sixteen.steps_per_epoch) == (63, 4)  # ceil(1000 / 16), ceil(1000 / 256)
    assert sixteen.cadence <= sixteen.total_steps // 2  # a checkpoint before the end, as on one process


def test_the_launch_scripts_resolved_run_counts_every_machines_processes(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(8))
    request = ExecuteRequest(plan=two_node_plan(str(tiny_llama)), plan_path="plan.json", data=str(data),
                             output_dir=str(tmp_path / "run"))
    batch = next(line for line in training_script(prepare(request)).splitlines() if line.startswith("batch "))
    assert batch.endswith("accumulation x 16 processes")
