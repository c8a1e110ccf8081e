"""The planned head and body rates reach a real run, and execute refuses an encoder a generative task.

Review defects 1 and 2 from the backend's side (the planner's side: tests/test_review_heads.py): a freeze
plan `advisor plan` makes for a tiny BERT trains its new head and its unfrozen last layer at the two planned
rates, as the run's own optimizer state shows; a plan.json edited to give an encoder a task that trains a
language-model head is refused in one line naming the plan.json keys, before any model loads.
"""

from __future__ import annotations

import json

import pytest

from advisor.backends import local
from advisor.backends.models import ExecuteRequest
from advisor.backends.prepared import prepare
from advisor.models import Plan

from conftest import alpaca_records, banking77_sample, run_cli, write_jsonl

torch = pytest.importorskip("torch")


@pytest.fixture
def freeze_plan(tmp_path, tiny_bert, capsys):
    """`advisor plan` on 30 labelled rows for the 2-layer BERT: freeze, last layer only, two rates."""
    data = banking77_sample(tmp_path / "banking.csv", labels=3, per_label=10)
    path = tmp_path / "plan.json"
    code, _, err = run_cli(capsys, "plan", "--data", data, "--model", tiny_bert, "--gpu", "cpu", "--out", path)
    assert code == 0, err
    plan = Plan.model_validate_json(path.read_text())
    assert plan.training.method == "freeze" and plan.training.hyperparameters.method["trainable_layers"] == 1
    rates = {group.name: group.learning_rate for group in plan.training.hyperparameters.param_groups}
    assert rates == {"pretrained": 3e-5, "new": 1e-3}
    return path, data, rates


def test_the_optimizer_puts_the_head_and_the_last_layer_in_their_planned_groups(freeze_plan, tmp_path):
    path, data, rates = freeze_plan
    plan = Plan.model_validate_json(path.read_text())
    request = ExecuteRequest(plan=plan, plan_path=str(path), data=str(data), output_dir=str(tmp_path / "run"))
    trainer, _ = local.make_trainer(prepare(request))
    trainer.create_optimizer()
    names = {id(parameter): name for name, parameter in trainer.model.named_parameters()}
    members: dict[str, set[str]] = {}
    for group in trainer.optimizer.param_groups:
        assert group["lr"] == rates[group["name"]]
        members.setdefault(group["name"], set()).update(names[id(p)] for p in group["params"])
    assert members["new"] == {"classifier.weight", "classifier.bias"}
    assert members["pretrained"] and all(name.startswith("bert.encoder.layer.1.") for name in members["pretrained"])
    trainable = {name for name, parameter in trainer.model.named_parameters() if parameter.requires_grad}
    assert members["new"] | members["pretrained"] == trainable


def test_advisor_execute_trains_the_freeze_plan_at_its_planned_rates(freeze_plan, tmp_path, capsys):
    path, data, rates = freeze_plan
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "execute", path, "--data", data, "--output-dir", out, "--max-steps", 1,
                           "--save-steps", 1, "--no-probe")
    assert code == 0, err
    saved = torch.load(out / "checkpoints" / "checkpoint-1" / "optimizer.pt", weights_only=True)
    # The scheduler keeps each group's base rate as initial_lr; the head's two tensors are in "new".
    planned = {(group["name"], group["initial_lr"]) for group in saved["param_groups"]}
    assert planned == {("new", rates["new"]), ("pretrained", rates["pretrained"])}
    assert sum(len(group["params"]) for group in saved["param_groups"] if group["name"] == "new") == 2


@pytest.mark.parametrize("task, says", [("instruction", "trains a language-model head to generate text"),
                                        ("ner", "token classification (one label per token)")])
def test_execute_refuses_a_plan_edited_to_give_an_encoder_a_generative_task(freeze_plan, task, says, tmp_path,
                                                                           capsys):
    path, _, _ = freeze_plan
    document = json.loads(path.read_text())
    document["profile"]["task"] = task
    path.write_text(json.dumps(document))
    alpaca = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(12))
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "execute", path, "--data", alpaca, "--output-dir", out)
    error = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and stdout == "" and len(error) == 1, err
    assert "plan.json profile.model" in err and f"profile.task is '{task}'" in err and says in error[0]
    assert not out.exists()
