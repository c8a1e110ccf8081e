"""The data tokenised once before a launch (pretokenize.py), and a sharded checkpoint read back whole (checkpoints.py).

In one process: `train.py --prepare-only` (accelerate.run_generated) saves
the encoding into tokenized/, `prepare` then reads it instead of tokenising;
a folder made for another plan or data is refused, naming what changed. A
DCP checkpoint, as FSDP writes one, is rewritten whole for a run without FSDP:
the same adapter weights and optimizer state come back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.errors import UserError

from conftest import alpaca_records, make_plan, run_cli, save_plan, write_jsonl


@pytest.fixture
def launch_files(tmp_path, tiny_llama, capsys):
    """A run folder as `--backend accelerate --dry-run` leaves it: launch files recorded in run-manifest.json."""
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(12))
    out = tmp_path / "run"
    code, _, stderr = run_cli(capsys, "execute", save_plan(make_plan(str(tiny_llama)), tmp_path / "plan.json"),
                              "--data", data, "--output-dir", out, "--backend", "accelerate", "--dry-run")
    assert code == 0, stderr
    return out, data


def prepare_only(out: Path, data: Path) -> int:
    from advisor.backends.accelerate import run_generated

    return run_generated(out / "plan.json", str(data), out, False, None, None, prepare_only=True)


def request_for(out: Path, data: Path):
    from advisor.backends.models import ExecuteRequest
    from advisor.documents import load_plan

    return ExecuteRequest(plan=load_plan(str(out / "plan.json")), plan_path=str(out / "plan.json"), data=str(data),
                          output_dir=str(out), backend="accelerate")


def test_prepare_only_saves_the_encoding_every_process_then_reads_without_tokenising(launch_files, monkeypatch, capsys):
    from advisor.backends import artifacts, prepared
    from advisor.backends.accelerate import TOKENIZED_DIR
    from advisor.backends.manifest import load_manifest

    out, data = launch_files
    assert prepare_only(out, data) == 0
    assert "tokenized 12 of 12 records" in capsys.readouterr().err
    folder = out / TOKENIZED_DIR
    assert (folder / "dataset_info.json").is_file() and not (out / ".partial").exists()
    # Every file of it is recorded as the run's: a later --overwrite may replace it, nothing else is foreign.
    manifest = load_manifest(out)
    assert {f"{TOKENIZED_DIR}/dataset_info.json", f"{TOKENIZED_DIR}/advisor-tokenized.json"} <= set(manifest.files)
    assert artifacts.foreign_in(out, manifest) == []

    tokenised = prepared.prepare(request_for(out, data))

    def no_tokenising(*args, **kwargs):
        raise AssertionError("a process tokenised the data although tokenized/ holds it")

    monkeypatch.setattr(prepared, "encode_records", no_tokenising)
    read = prepared.prepare(request_for(out, data), folder)
    assert read.encoded.features == tokenised.encoded.features
    assert read.encoded.truncated == tokenised.encoded.truncated
    # A second --prepare-only finds it current and leaves it as it is.
    before = (folder / "advisor-tokenized.json").stat().st_mtime_ns
    assert prepare_only(out, data) == 0
    assert "tokenized data is current" in capsys.readouterr().err
    assert (folder / "advisor-tokenized.json").stat().st_mtime_ns == before


def test_a_stale_tokenized_folder_is_refused_naming_what_changed(launch_files, capsys):
    from advisor.backends.accelerate import TOKENIZED_DIR
    from advisor.backends.prepared import prepare

    out, data = launch_files
    assert prepare_only(out, data) == 0
    folder = out / TOKENIZED_DIR
    plan = json.loads((out / "plan.json").read_text())
    plan["training"]["hyperparameters"]["seq_len"] = 16
    (out / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(UserError, match=r"does not fit this run: the plan .* changed since .*--prepare-only"):
        prepare(request_for(out, data), folder)
    write_jsonl(data, alpaca_records(10))
    plan["training"]["hyperparameters"]["seq_len"] = 48
    (out / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(UserError, match=r"the data .* changed since \(sha256"):
        prepare(request_for(out, data), folder)
    # --prepare-only replaces the stale folder (the run's own), and the processes read the new one.
    capsys.readouterr()
    assert prepare_only(out, data) == 0
    assert "tokenized 10 of 10 records" in capsys.readouterr().err
    assert len(prepare(request_for(out, data), folder).encoded.features) == 10


def test_prepare_only_never_replaces_a_file_advisor_did_not_write(launch_files, capsys):
    from advisor.backends.accelerate import TOKENIZED_DIR

    out, data = launch_files
    assert prepare_only(out, data) == 0
    (out / TOKENIZED_DIR / "notes.txt").write_text("mine")
    plan = json.loads((out / "plan.json").read_text())
    plan["training"]["hyperparameters"]["epochs"] += 1  # a changed plan: the folder is stale
    (out / "plan.json").write_text(json.dumps(plan))
    assert prepare_only(out, data) == 2
    assert "'tokenized/notes.txt'" in capsys.readouterr().err
    assert (out / TOKENIZED_DIR / "notes.txt").read_text() == "mine"


def test_a_sharded_checkpoint_is_read_back_whole_with_its_optimizer_state(tmp_path, tiny_llama):
    """DCP files as FSDP saves them (accelerate's save_fsdp_model/optimizer: the adapter in peft's key format, the
    optimizer keyed by parameter name), written here in one process; the whole copy loads as the Trainer loads one."""
    import torch
    import torch.distributed.checkpoint as dcp
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
    from transformers import AutoModelForCausalLM

    from advisor.backends.checkpoints import WHOLE, is_sharded, whole_copy, world_size_line

    def lora_model():
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(tiny_llama)
        return get_peft_model(base, LoraConfig(r=4, target_modules="all-linear"))

    model = lora_model()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(input_ids=torch.tensor([[2, 5, 6, 7]]), labels=torch.tensor([[2, 5, 6, 7]])).loss.backward()
    optimizer.step()
    checkpoint = tmp_path / "checkpoints" / "checkpoint-2"
    dcp.save({"model": get_peft_model_state_dict(model)}, checkpoint_id=str(checkpoint / "pytorch_model_fsdp_0"))
    dcp.save({"optimizer": get_optimizer_state_dict(model, optimizer)}, checkpoint_id=str(checkpoint / "optimizer_0"))
    for rank in (0, 1):
        torch.save({}, checkpoint / f"rng_state_{rank}.pth")
    assert is_sharded(checkpoint)
    assert world_size_line(checkpoint, 1).startswith("resuming a 2-process checkpoint on 1 process:")
    assert world_size_line(checkpoint, 2) is None

    fresh = lora_model()
    copy = whole_copy(checkpoint, tmp_path / "checkpoints", fresh)
    assert copy == tmp_path / "checkpoints" / WHOLE / "checkpoint-2" and not is_sharded(copy)
    fresh.load_adapter(str(copy), "default", is_trainable=True)  # what the Trainer does with a whole adapter
    trained = get_peft_model_state_dict(model)
    assert all(torch.equal(tensor, trained[name]) for name, tensor in get_peft_model_state_dict(fresh).items())
    assert any(not torch.equal(tensor, lora_model().state_dict()[name]) for name, tensor in fresh.state_dict().items())
    fresh_optimizer = torch.optim.AdamW([p for p in fresh.parameters() if p.requires_grad], lr=0.1)
    fresh_optimizer.load_state_dict(torch.load(copy / "optimizer.pt", weights_only=True))
    expected = optimizer.state_dict()["state"]
    loaded = fresh_optimizer.state_dict()["state"]
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[i]["exp_avg"], expected[i]["exp_avg"]) for i in expected)


def test_a_whole_checkpoint_is_refused_in_one_line_under_fsdp(tmp_path):
    """FSDP reads only its own DCP shards: a checkpoint one process wrote stops with the way to finish the run."""
    from types import SimpleNamespace

    from advisor.backends.local import _loadable

    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match=r"cannot resume .* under FSDP: it was written whole.*--resume`, one process"):
        _loadable(SimpleNamespace(is_fsdp_enabled=True), str(checkpoint), tmp_path)
    assert _loadable(SimpleNamespace(is_fsdp_enabled=False), str(checkpoint), tmp_path) == str(checkpoint)
