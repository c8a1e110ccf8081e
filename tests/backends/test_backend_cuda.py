"""Precision from the plan and the hardware; the CUDA-only paths (4-bit QLoRA, bf16 autocast) where CUDA exists.

The table is checked everywhere; the runs skip cleanly on a machine without
CUDA (they have not been run on a GPU in this project's CI).
"""

from __future__ import annotations

import json

import pytest
import torch

from advisor.backends.hardware import Device, run_dtypes
from advisor.precision import resolve_dtypes

from conftest import alpaca_records, make_plan, run_cli, save_plan, write_jsonl

CPU = Device(kind="cpu", name="CPU")
AMPERE = Device(kind="cuda", name="A100", bf16=True)
TURING = Device(kind="cuda", name="T4", bf16=False)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_the_run_takes_its_dtypes_from_the_one_precision_table():
    for frozen in (True, False):
        assert run_dtypes("bf16", CPU, frozen) == resolve_dtypes("bf16", cuda=False, bf16=False, frozen_base=frozen)
        assert run_dtypes("bf16", TURING, frozen) == resolve_dtypes("bf16", cuda=True, bf16=False, frozen_base=frozen)
        assert run_dtypes("bf16", AMPERE, frozen).weights == "bfloat16"


@pytest.mark.gpu
@needs_cuda
def test_bf16_on_cuda_trains_with_bf16_weights_and_autocast(tmp_path, tiny_llama, capsys):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(16))
    plan = save_plan(make_plan(str(tiny_llama), precision="bf16"), tmp_path / "plan.json")
    out = tmp_path / "run"
    code, _, stderr = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", out, "--max-steps", 2)
    assert code == 0, stderr
    assert json.loads((out / "metrics.json").read_text())["precision"] == "bf16"


@pytest.mark.gpu
@needs_cuda
def test_qlora_loads_the_base_in_4_bits_and_saves_an_adapter(tmp_path, tiny_llama, capsys):
    pytest.importorskip("bitsandbytes")
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(16))
    plan = save_plan(make_plan(str(tiny_llama), method="qlora", precision="bf16"), tmp_path / "plan.json")
    out = tmp_path / "run"
    code, _, stderr = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", out, "--max-steps", 2)
    assert code == 0, stderr
    assert (out / "adapter_model.safetensors").is_file()
    assert "merge_and_unload" in (out / "README.md").read_text()
