"""A checkpoint written by 2 processes resumes on 1: plain `advisor execute --resume`, the local backend.

The 2-process run (test_distributed.py's launch: CPU processes over gloo,
with the test plugin's method that runs out of memory in process 1 after
step 3) leaves the checkpoint of step 2 and the data tokenised once in
tokenized/. One process then finishes it: from an FSDP checkpoint (sharded,
DCP format; rewritten whole for a run without FSDP) and from a DDP one (whole
already; the Trainer looks for one RNG file it does not find and goes on).
The resumed FSDP-LoRA adapter has every tensor, whole (the "partial adapter"
failure of FSDP with peft). Slow (one launch and one resume each, 1-3 min on
a loaded 2-core machine): CI runs them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from test_distributed import (  # noqa: F401 (alpaca, launch_env: fixtures)
    STEPS,
    alpaca,
    assert_adapter_loads,
    assert_full_model_loads,
    completed,
    execute,
    launch_env,
    run,
    two_process_plan,
)

pytestmark = pytest.mark.slow


def resume_in_one_process(tmp_path: Path, env: dict, data: Path, out: Path):
    return run([sys.executable, "-m", "advisor", "execute", tmp_path / "plan.json", "--data", data,
                "--output-dir", out, "--max-steps", STEPS, "--save-steps", 2, "--resume"], env)


def assert_every_adapter_tensor_whole(out: Path, base: Path) -> None:
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    saved = load_file(str(out / "adapter_model.safetensors"))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out)
    expected = {name: parameter.shape for name, parameter in model.named_parameters() if "lora_" in name}
    # peft's file leaves out the adapter name: ...q_proj.lora_A.weight for ...q_proj.lora_A.default.weight
    assert {name.replace(".default", ""): shape for name, shape in expected.items()} == \
        {name: tensor.shape for name, tensor in saved.items()}


@pytest.mark.parametrize(("sharding", "method"), [("fsdp", "lora"), ("ddp", "full")])
def test_a_two_process_checkpoint_resumes_in_one_process(tmp_path, tiny_llama, alpaca, launch_env, sharding, method):
    out = tmp_path / "out"
    failed = execute(tmp_path, launch_env, two_process_plan(tiny_llama, f"oom-{method}", sharding), alpaca, out)
    assert failed.returncode != 0 and (out / "checkpoints" / "checkpoint-2").is_dir(), failed.stderr[-3000:]
    # The launch tokenised the data once, in tokenized/, recorded as the run's.
    manifest = json.loads((out / "run-manifest.json").read_text())
    assert "tokenized/dataset_info.json" in manifest["files"]

    resumed = resume_in_one_process(tmp_path, launch_env, alpaca, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming a 2-process checkpoint on 1 process" in resumed.stderr
    metrics = completed(out)
    progress = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    trained_steps = [entry["step"] for entry in progress if "loss" in entry]
    assert trained_steps.count(1) == 1 and trained_steps[-2:] == [3, 4], trained_steps  # from step 2, not from 0
    assert [loss["step"] for loss in metrics["main"]["losses"]] == [1, 2, 3, 4]
    assert not (out / "checkpoints" / ".whole").exists()
    if method == "lora":
        assert_every_adapter_tensor_whole(out, tiny_llama)
        assert_adapter_loads(out, tiny_llama)
    else:
        assert_full_model_loads(out, tiny_llama)
