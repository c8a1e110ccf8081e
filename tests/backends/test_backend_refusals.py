"""Runs that must not start, and output directories that must survive: one line, the right exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.backends.plan_trainer import PlanTrainer

from conftest import alpaca_records, make_plan, run_cli, save_plan, write_jsonl


@pytest.fixture
def alpaca(tmp_path):
    return write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(16))


@pytest.fixture
def plan_file(tmp_path, tiny_llama):
    return save_plan(make_plan(str(tiny_llama)), tmp_path / "plan.json")


def execute(capsys, plan, data, out, *extra):
    return run_cli(capsys, "execute", plan, "--data", data, "--output-dir", out, "--max-steps", 1, *extra)


def test_invalid_records_stop_the_run_before_anything_is_written(tmp_path, plan_file, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps(alpaca_records(1)[0]) + "\n" + json.dumps({"instruction": "no output"}) + "\n")
    out = tmp_path / "run"
    code, _, stderr = execute(capsys, plan_file, data, out)
    assert code == 1
    assert "line 2" in stderr and "invalid record" in stderr
    assert not out.exists()


def test_a_non_empty_directory_is_refused_and_left_alone(tmp_path, plan_file, alpaca, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    code, _, stderr = execute(capsys, plan_file, alpaca, out)
    assert code == 2 and stderr.count("error:") == 1 and "not empty" in stderr
    code, _, stderr = execute(capsys, plan_file, alpaca, out, "--overwrite")
    assert code == 2 and stderr.count("\n") == 1 and "files advisor did not write ('notes.txt')" in stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "precious"


def test_overwrite_puts_the_previous_run_back_when_the_new_one_fails(tmp_path, plan_file, alpaca, capsys, monkeypatch):
    out = tmp_path / "run"
    assert execute(capsys, plan_file, alpaca, out)[0] == 0
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    original = PlanTrainer.training_step

    def out_of_memory_in_the_run(self, *args, **kwargs):  # the preflight probe passes, the run fails
        import torch

        if self.args.output_dir.endswith("checkpoints"):
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PlanTrainer, "training_step", out_of_memory_in_the_run)
    code, _, stderr = execute(capsys, plan_file, alpaca, out, "--overwrite")
    assert code == 1
    assert not list(tmp_path.glob("run.replaced-*"))
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert f"the previous run is back in '{out}'" in stderr

    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, _ = execute(capsys, plan_file, alpaca, tmp_path / "second")
    assert code == 0
    assert execute(capsys, plan_file, alpaca, tmp_path / "second", "--overwrite")[0] == 0
    assert not list(tmp_path.glob("second.replaced-*"))  # replaced for good once the new run completed


def test_qlora_without_cuda_is_one_line_and_exit_2(tmp_path, tiny_llama, alpaca, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: qlora may run")
    plan = save_plan(make_plan(str(tiny_llama), method="qlora", precision="bf16"), tmp_path / "plan.json")
    out = tmp_path / "run"
    code, stdout, stderr = execute(capsys, plan, alpaca, out)
    assert code == 2 and stdout == ""
    assert stderr.strip().splitlines() == [stderr.strip()] and "needs a CUDA GPU" in stderr
    assert "change plan.json training.method" in stderr
    assert not out.exists()


def test_a_typo_in_the_plan_is_named_in_one_line(tmp_path, tiny_llama, alpaca, capsys):
    document = json.loads(make_plan(str(tiny_llama)).model_dump_json())
    document["training"]["hyperparameters"]["warmup_ration"] = 0.1
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(document))
    code, _, stderr = execute(capsys, plan, alpaca, tmp_path / "run")
    assert code == 2 and stderr.count("error:") == 1
    assert "unknown key 'training.hyperparameters.warmup_ration'" in stderr


def test_a_plan_without_training_has_nothing_to_run(tmp_path, tiny_llama, alpaca, capsys):
    document = json.loads(make_plan(str(tiny_llama)).model_dump_json())
    document["recommendation"] = {"approach": "rag", "method": None, "complements": [], "summary": "retrieve"}
    document["training"] = None
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(document))
    code, _, stderr = execute(capsys, plan, alpaca, tmp_path / "run")
    assert code == 1 and "nothing to train" in stderr


def test_a_hub_model_offline_and_not_cached_is_refused_before_loading(tmp_path, alpaca, capsys, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache" / "hub"))
    plan = save_plan(make_plan("gpt2"), tmp_path / "plan.json")
    code, _, stderr = execute(capsys, plan, alpaca, tmp_path / "run")
    assert code == 2
    assert "the Hub is offline (HF_HUB_OFFLINE) and the model is not in the local cache" in stderr
    assert "set plan.json profile.model to a local model directory" in stderr


def test_the_preflight_refuses_rows_left_without_loss_before_anything_is_written(tmp_path, plan_file, capsys):
    long_prompt = {"instruction": "name the colour of the sky " * 12, "input": "", "output": "blue"}
    data = write_jsonl(tmp_path / "cut.jsonl", alpaca_records(8) + [long_prompt])
    out = tmp_path / "run"
    code, _, stderr = execute(capsys, plan_file, data, out)
    assert code == 1
    assert "error: line 9: no token carries loss" in stderr
    assert not out.exists()


def test_a_split_the_data_cannot_give_names_the_plan_key(tiny_bert, tmp_path, capsys):
    """execute has no split flags: the refusal names plan.json's key, not `advisor split`'s --no-stratify."""
    rows = [{"text": f"text number {i}", "label": "common"} for i in range(12)] + [{"text": "alone", "label": "rare"}]
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"{row['text']},{row['label']}\n" for row in rows), encoding="utf-8")
    plan = save_plan(make_plan(str(tiny_bert), task="classification", data={"validation_ratio": 0.25, "stratify": True}),
                     tmp_path / "plan.json")
    code, _, err = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", tmp_path / "run", "--dry-run")
    line = err.strip().splitlines()[-1]
    assert code == 2 and "change plan.json training.data.stratify" in line and "--no-stratify" not in line


# -- every refusal of a plan setting names the plan.json key to change (execute has no flags for them)

def refusal_of(capsys, tmp_path, plan, data, *extra) -> str:
    path = plan if isinstance(plan, Path) else save_plan(plan, tmp_path / "plan.json")
    code, stdout, stderr = run_cli(capsys, "execute", path, "--data", data, "--output-dir", tmp_path / "run",
                                   "--dry-run", *extra)
    assert code == 2 and stdout == "" and stderr.count("error:") == 1, stderr
    return stderr


def test_an_8bit_optimizer_without_bitsandbytes_names_the_optimizer_key(tmp_path, tiny_llama, alpaca, capsys,
                                                                       monkeypatch):
    monkeypatch.setattr("advisor.extras.missing", lambda modules: [m for m in modules if m == "bitsandbytes"])
    plan = make_plan(str(tiny_llama), optimizer="adamw_8bit")
    assert "plan.json training.hyperparameters.optimizer" in refusal_of(capsys, tmp_path, plan, alpaca)


def test_an_unknown_eval_metric_names_its_key(tmp_path, tiny_llama, alpaca, capsys):
    plan = make_plan(str(tiny_llama), eval_metric="bleu")
    assert "unknown plan.json training.hyperparameters.eval_metric 'bleu'" in refusal_of(capsys, tmp_path, plan, alpaca)


def test_data_of_another_task_names_the_task_key(tmp_path, tiny_llama, alpaca, capsys):
    plan = make_plan(str(tiny_llama), task="classification")
    assert "(plan.json profile.task)" in refusal_of(capsys, tmp_path, plan, alpaca)


def test_bad_method_hyperparameters_name_their_key(tmp_path, tiny_llama, alpaca, capsys):
    document = json.loads(make_plan(str(tiny_llama), method="lora").model_dump_json())
    document["training"]["hyperparameters"]["method"] = {"r": 0}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(document))
    assert "plan.json training.hyperparameters.method (lora)" in refusal_of(capsys, tmp_path, plan, alpaca)
