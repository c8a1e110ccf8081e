"""The plan's learning rates per parameter group reach the Trainer's optimizer."""

from __future__ import annotations

from advisor.backends import local
from advisor.backends.models import ExecuteRequest
from advisor.backends.prepared import prepare
from advisor.backends.param_groups import canonical_name

from conftest import alpaca_records, banking77_sample, make_plan, write_jsonl

GROUPS = [{"name": "new", "learning_rate": 1e-3, "rule": "new-layer-rate"},
          {"name": "pretrained", "learning_rate": 1e-4, "rule": "body-rate"}]


def optimizer_of(plan, data, tmp_path):
    request = ExecuteRequest(plan=plan, plan_path="plan.json", data=str(data), output_dir=str(tmp_path / "run"))
    trainer, _ = local.make_trainer(prepare(request))
    trainer.create_optimizer()
    return trainer


def rates_by_group(trainer) -> dict[str, set[float]]:
    rates: dict[str, set[float]] = {}
    for group in trainer.optimizer.param_groups:
        rates.setdefault(group["name"], set()).add(group["lr"])
    return rates


def test_full_fine_tuning_gives_the_new_head_and_the_pretrained_body_their_planned_rates(tmp_path, tiny_bert):
    data = banking77_sample(tmp_path / "banking.csv", labels=3, per_label=4)
    plan = make_plan(str(tiny_bert), task="classification", learning_rate=1e-4, param_groups=GROUPS, weight_decay=0.01)
    trainer = optimizer_of(plan, data, tmp_path)
    assert rates_by_group(trainer) == {"new": {1e-3}, "pretrained": {1e-4}}
    named = {id(p): n for n, p in trainer.model.named_parameters()}
    new_names = {named[id(p)] for g in trainer.optimizer.param_groups if g["name"] == "new" for p in g["params"]}
    assert new_names == {"classifier.weight", "classifier.bias"}
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in trainer.optimizer.param_groups for p in g["params"]) == trainable
    # Weight decay skips biases and norms, as the Trainer's own groups do.
    decays = {named[id(p)]: g["weight_decay"] for g in trainer.optimizer.param_groups for p in g["params"]}
    assert decays["classifier.weight"] == 0.01 and decays["classifier.bias"] == 0.0


def test_lora_weights_and_the_peft_kept_head_are_new(tmp_path, tiny_bert):
    data = banking77_sample(tmp_path / "banking.csv", labels=3, per_label=4)
    plan = make_plan(str(tiny_bert), task="classification", method="lora", learning_rate=1e-4, param_groups=GROUPS)
    trainer = optimizer_of(plan, data, tmp_path)
    assert rates_by_group(trainer) == {"new": {1e-3}}
    names = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in names) and any("classifier" in n for n in names)


def test_one_rate_for_everything_when_the_plan_names_no_group(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(12))
    trainer = optimizer_of(make_plan(str(tiny_llama), learning_rate=3e-4), data, tmp_path)
    assert {rate for rates in rates_by_group(trainer).values() for rate in rates} == {3e-4}
    assert set(rates_by_group(trainer)) == {"pretrained"}


def test_peft_names_map_back_to_the_checkpoint():
    assert canonical_name("base_model.model.classifier.modules_to_save.default.weight") == "classifier.weight"
    assert canonical_name("base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight") == (
        "model.layers.0.self_attn.q_proj.weight")
