"""Review defect #10: LoRA 'all-linear' on a mixture-of-experts model adapts the experts, and the plan says so.

transformers 5 stores a MoE layer's experts as 3D parameters, which peft's
target_modules does not see; peft adapts them through `target_parameters`
(its ParamWrapper), at peft's suggested per-expert rank max(1, r // experts).
The router stays frozen (Unsloth's MoE default). These tests build the tiny
MoE configs of tests/estimate on CPU: the plugin's peft model has the
footprint's parameters, trains, saves, reloads with plain peft and generates;
`advisor plan` then `advisor execute` run one end to end; and the repro plans
(Qwen3-30B-A3B, gpt-oss-20b on 2 x A100 80GB) count, price and name the experts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.cli.main import main
from advisor.errors import UserError
from advisor.estimate import storage
from advisor.knowledge_base import resolve_model
from advisor.manager import get_method
from tests.backends.conftest import alpaca_records, tokenizer_words, word_tokenizer, write_jsonl
from tests.estimate import tiny_models as tm

MOE_FAMILIES = ["mixtral", "qwen3_moe", "gpt_oss", "deepseek_v2", "deepseek_v3"]
REPRO = ["plan", "--task", "code", "--examples", "40000", "--gpu", "a100-80gb", "--num-gpus", "2", "--json"]


def plan_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    code = main([*REPRO, *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def expert_wrappers(model) -> list:
    from peft.tuners.lora import ParamWrapper

    return [module for module in model.modules() if isinstance(module, ParamWrapper)]


@pytest.mark.parametrize("model, experts", [("qwen3-30b-a3b", 128), ("gpt-oss-20b", 32)])
def test_the_repro_plan_trains_and_names_the_experts(capsys, model, experts):
    plan = plan_json(capsys, "--model", model)
    arch = resolve_model(model).architecture
    lora = get_method("lora")
    attention_only = lora.footprint(arch, lora.hyperparameters({"target_modules": ["q_proj", "k_proj", "v_proj",
                                                                                    "o_proj"]}))
    summary = plan["recommendation"]["summary"]
    assert plan["recommendation"]["method"] == "lora" and plan["estimate"]["fits"]
    # rank 1 on each expert (16 // experts, at least 1): far more than attention alone, far less than rank 16 each.
    expert_params = arch.moe_layers * experts * sum(linear.in_features + linear.out_features
                                                    for linear in arch.layer_linears() if linear.role == "expert")
    assert plan["estimate"]["trainable_params"] == attention_only.trainable_params + expert_params
    assert f"all {experts} experts of every MoE layer (rank 1 each" in summary and "router stays frozen" in summary
    assert "the linear layers" not in summary


def test_the_repro_still_fits_at_the_micro_batch_it_had(capsys):
    """Rank-1 expert adapters cost the 30B model ~3 GiB per device and keep micro-batch 8 on 2 x A100 80GB."""
    config = plan_json(capsys, "--model", "qwen3-30b-a3b")["estimate"]
    assert config["config"]["batch_size"] == 8 and config["config"]["sharding"] == "ddp"
    assert config["memory"]["peak_gib"] < config["device_memory_gib"]


def test_expert_rank_is_peft_s_budget_and_can_be_set():
    lora = get_method("lora")
    qwen = resolve_model("qwen3-30b-a3b").architecture
    mixtral = tm.architecture("mixtral")  # 4 experts
    assert lora.footprint(qwen, lora.hyperparameters({"r": 16})).adapted_experts == {"gate_up_proj": 1, "down_proj": 1}
    assert lora.footprint(qwen, lora.hyperparameters({"r": 256})).adapted_experts == {"gate_up_proj": 2,
                                                                                        "down_proj": 2}
    assert lora.footprint(mixtral, lora.hyperparameters({"r": 16})).adapted_experts == {"gate_up_proj": 4,
                                                                                          "down_proj": 4}
    chosen = lora.footprint(qwen, lora.hyperparameters({"r": 16, "expert_r": 4}))
    assert chosen.adapted_experts == {"gate_up_proj": 4, "down_proj": 4} and "rank 4 each" in chosen.scope
    frozen = lora.footprint(qwen, lora.hyperparameters({"expert_r": 0}))
    assert frozen.adapted_experts == {} and "stay frozen (expert_r is 0" in frozen.scope


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_the_plugin_s_peft_model_trains_saves_and_reloads_with_plain_peft(tmp_path, family):
    import torch
    from peft import PeftModel

    hp = {"r": 8}  # 4 experts: rank 2 each
    model = tm.build(family, "float32", "lora", **hp)
    footprint = tm.footprint(family, "lora", **hp)
    arch = tm.architecture(family)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == footprint.trainable_params
    wrappers = expert_wrappers(model)
    assert len(wrappers) == 2 * arch.moe_layers
    assert {wrapper.lora_A["default"].weight.shape[0] for wrapper in wrappers} == {2 * arch.num_experts}
    # The linears keep the plan's dropout; peft's expert adapters cannot have any.
    assert {type(wrapper.lora_dropout["default"]).__name__ for wrapper in wrappers} == {"Identity"}
    assert any(type(module.lora_dropout["default"]).__name__ == "Dropout" for module in model.modules()
               if hasattr(module, "lora_dropout") and module not in wrappers)

    batch = tm.batch(family, 2, 24)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(wrapper.lora_B["default"].weight.abs().sum() > 0 for wrapper in wrappers)  # the experts trained
    model.eval()
    with torch.no_grad():
        trained = model(input_ids=batch["input_ids"]).logits
    model.save_pretrained(tmp_path)
    saved = sum((tmp_path / name).stat().st_size for name in ("adapter_model.safetensors", "adapter_config.json"))
    assert abs(storage.adapter_bytes(arch, footprint) - saved) <= 4_000

    base = tm.build(family, "float32", "full")  # the same seed, so the same random base
    reloaded = PeftModel.from_pretrained(base, tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=batch["input_ids"]).logits, trained, atol=1e-5)
    generated = reloaded.generate(input_ids=batch["input_ids"][:1, :4], max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, 7)


def test_deepseek_says_its_shared_experts_and_dense_layers_stay_frozen():
    """peft re-targets gate/up/down_proj names to the routed experts, so the shared and dense MLPs cannot adapt."""
    scope = tm.footprint("deepseek_v3", "lora", r=8).scope
    assert "the router, the shared experts and the dense layers' MLPs stay frozen" in scope


@pytest.mark.parametrize("method, reason", [("dora", "DoRA cannot adapt 3D expert weights"),
                                            ("qlora", "not verified here")])
def test_variants_that_leave_the_experts_frozen_say_so(capsys, method, reason):
    plan = plan_json(capsys, "--model", "qwen3-30b-a3b", "--method", method, "--gpu", "h100")
    summary = plan["recommendation"]["summary"]
    assert "only the attention carries adapters: all 128 experts of every MoE layer (95% of the weights)" in summary
    assert "and the router stay frozen" in summary and reason in summary and "the linear layers" not in summary
    assert plan["estimate"]["trainable_params"] < 14_000_000


def test_a_list_of_linears_keeps_the_experts_frozen_unless_expert_r_is_set():
    lora = get_method("lora")
    arch = tm.architecture("qwen3_moe")
    listed = lora.footprint(arch, lora.hyperparameters({"target_modules": ["q_proj", "v_proj"]}))
    # r 16 over 4 experts: rank 4 each
    assert listed.adapted_experts == {} and "expert_r, or 'all-linear', adapts them at rank 4" in listed.scope
    both = lora.footprint(arch, lora.hyperparameters({"target_modules": ["q_proj", "v_proj"], "expert_r": 3}))
    assert both.adapted_linears == ["q_proj", "v_proj"] and both.adapted_experts == {"gate_up_proj": 3,
                                                                                    "down_proj": 3}


@pytest.mark.parametrize("family, hp, message", [
    ("llama", {"expert_r": 2}, "expert_r applies to mixture-of-experts models"),
    ("qwen3_moe", {"target_modules": ["q_proj", "down_proj"]}, "expert_r"),
    ("qwen3_moe", {"target_modules": ["q_proj", "gate"]}, "router's or the experts' weight"),
])
def test_settings_that_cannot_adapt_the_experts_are_one_line_refusals(family, hp, message):
    lora = get_method("lora")
    with pytest.raises(UserError, match=message) as refused:
        lora.footprint(tm.architecture(family), lora.hyperparameters(hp))
    assert "\n" not in str(refused.value)


def test_dora_with_expert_r_and_converted_names_with_expert_r_are_refused():
    arch = tm.architecture("deepseek_v3")
    dora, lora = get_method("dora"), get_method("lora")
    with pytest.raises(UserError, match="DoRA cannot adapt"):
        dora.footprint(arch, dora.hyperparameters({"expert_r": 1}))
    with pytest.raises(UserError, match="or set expert_r, not both"):
        lora.footprint(arch, lora.hyperparameters({"target_modules": ["q_a_proj", "down_proj"], "expert_r": 1}))


@pytest.fixture()
def tiny_qwen3_moe(tmp_path: Path) -> Path:
    """tests/estimate's tiny Qwen3-MoE (4 experts) with the backend tests' word-level tokenizer, saved to a folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = word_tokenizer(tokenizer_words())
    values = dict(tm.CONFIGS["qwen3_moe"], vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_plan_then_execute_trains_the_experts_of_a_tiny_moe(tmp_path, tiny_qwen3_moe, capsys, monkeypatch):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    code = main(["plan", "--model", str(tiny_qwen3_moe), "--gpu", "cpu", "--task", "instruction", "--examples",
                 "2000", "--method", "lora", "--json"])
    plan = json.loads(capsys.readouterr().out)
    assert code == 0 and "all 4 experts of every MoE layer" in plan["recommendation"]["summary"]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    data = write_jsonl(tmp_path / "data.jsonl", alpaca_records(24))
    code = main(["execute", str(tmp_path / "plan.json"), "--data", str(data), "--output-dir", str(tmp_path / "run"),
                 "--max-steps", "2"])
    assert code == 0, capsys.readouterr().err
    adapter = json.loads((tmp_path / "run" / "adapter_config.json").read_text())
    assert sorted(adapter["target_parameters"]) == ["experts.down_proj", "experts.gate_up_proj"]

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_qwen3_moe), tmp_path / "run")
    assert all(wrapper.lora_B["default"].weight.abs().sum() > 0 for wrapper in expert_wrappers(model))
    generated = model.generate(input_ids=torch.tensor([[2, 5, 6]]), max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, 6)


# -- a checkpoint stored MXFP4 (gpt-oss) trains dequantised: no plan offers QLoRA on it ---------------------------
def _qlora_alternative(plan: dict) -> dict:
    return next(row for row in plan["alternatives"] if row["method"] == "qlora")


def _gpt_oss_directory(tmp_path: Path, stored: dict | None) -> Path:
    config = {**tm.CONFIGS["gpt_oss"], **({"quantization_config": stored} if stored else {})}
    directory = tmp_path / ("gpt-oss-mxfp4" if stored else "gpt-oss-bf16")
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


def test_the_catalog_gpt_oss_never_gets_qlora_and_a_forced_one_is_one_line(capsys):
    plan = plan_json(capsys, "--model", "gpt-oss-20b", "--gpu", "h100", "--num-gpus", "1")
    assert plan["recommendation"]["method"] == "lora"
    assert _qlora_alternative(plan)["why_not"].startswith("unavailable: gpt-oss-20b is stored MXFP4-quantised")
    assert main([*REPRO, "--model", "gpt-oss-20b", "--method", "qlora"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "stored MXFP4-quantised" in error and "--method qlora" in error


def test_a_local_checkpoint_is_judged_by_its_own_quantization_config(tmp_path, capsys):
    stored = plan_json(capsys, "--model", str(_gpt_oss_directory(tmp_path, {"quant_method": "mxfp4"})))
    plain = plan_json(capsys, "--model", str(_gpt_oss_directory(tmp_path, None)))
    assert "stored MXFP4-quantised" in _qlora_alternative(stored)["why_not"]
    assert not _qlora_alternative(plain)["why_not"].startswith("unavailable")
