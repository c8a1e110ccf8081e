"""What a run prints reads well: the resolved run before the first step, counts in words, the launch config."""

import pytest

from advisor.backends.accelerate import LaunchFiles, launch_words
from advisor.backends.describe import plural
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
