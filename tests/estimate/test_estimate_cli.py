"""`advisor estimate`: JSON per the contract, a readable table, one-line errors."""

import json
import subprocess
import sys

import pytest

from advisor.cli.main import main


def run_json(capsys, *argv) -> tuple[int, dict]:
    code = main(["estimate", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_json_has_the_contract_fields(capsys):
    code, result = run_json(capsys, "--model", "llama-3.2-3b", "--method", "lora", "--batch-size", "4",
                            "--seq-len", "2048", "--gpu", "h100")
    assert code == 0
    assert result["memory"]["peak_gib"] == pytest.approx(67.7, rel=0.02)  # the calibration measured 67.69
    assert sum(result["memory"]["breakdown"].values()) == pytest.approx(result["memory"]["peak_gib"], abs=0.01)
    assert result["trainable_params"] == 24313856 and result["total_params"] == 3237063680
    assert result["fits"] is True and result["time"]["tokens_per_s"] > 0


@pytest.mark.parametrize(
    "argv, trainable",
    [(["--method", "full", "--precision", "mixed"], 494032768),
     (["--method", "freeze", "--trainable-layers", "2"], 29824768),
     (["--method", "prefix", "--num-virtual-tokens", "20"], 122880),
     (["--method", "lora", "--lora-rank", "8"], 4399104),
     (["--method", "lora", "--set", "r=8", "--set", 'target_modules=["q_proj","v_proj"]'], 540672)],
)
def test_method_flags_reach_the_plugin(capsys, argv, trainable):
    code, result = run_json(capsys, "--model", "qwen2.5-0.5b", *argv)
    assert code == 0 and result["trainable_params"] == trainable
    assert result["fits"] is None


def test_not_fitting_exits_1(capsys):
    code, result = run_json(capsys, "--model", "llama-3.1-8b", "--method", "full", "--gpu", "t4")
    assert code == 1 and result["fits"] is False


@pytest.mark.parametrize(
    "argv, message",
    [(["--method", "lora", "--trainable-layers", "2"], "method 'lora' has no hyperparameter 'trainable_layers'; "
                                                        "it accepts: r, alpha"),
     (["--method", "nope"], "unknown method 'nope'"),
     (["--method", "lora", "--set", "r=big"], "invalid value 'big' for 'r'"),
     (["--method", "lora", "--set", "rank"], "invalid --set 'rank': expected KEY=VALUE"),
     (["--method", "lora", "--gpu", "tpu"], "unknown gpu 'tpu'"),
     (["--method", "lora", "--batch-size", "0"], "--batch-size: invalid value '0'")],
)
def test_mistakes_are_one_line_and_exit_2(capsys, argv, message):
    code = main(["estimate", "--model", "gpt2", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_human_output_is_a_breakdown_table(capsys):
    assert main(["estimate", "--model", "gpt2", "--method", "qlora", "--gpu", "t4"]) == 0
    out = capsys.readouterr().out
    assert "weights fp32 upcast" in out and "peak (max_memory_allocated)" in out and "fits" in out


def test_estimate_imports_no_training_stack():
    code = ("import sys; from advisor.cli.main import main; "
            "main(['estimate', '--model', 'gpt2', '--method', 'lora', '--json']); "
            "heavy = {'torch', 'transformers', 'peft', 'bitsandbytes', 'accelerate', 'datasets', 'textual'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_memory_override_is_named_as_such_and_times_carry_their_band(capsys):
    code = main(["estimate", "--model", "qwen3-0.6b", "--method", "lora", "--gpu", "a100-80gb",
                 "--gpu-memory-gib", "48", "--tokens", "1000000", "--price-per-hour", "2"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "of 48.0 GiB (custom) per device" in out and "on a100-80gb" not in out
    assert "h p10-p90" in out


def test_moe_and_mla_configs_estimate_from_a_local_folder(capsys, tmp_path):
    config = dict(model_type="deepseek_v2", num_hidden_layers=3, hidden_size=64, intermediate_size=96,
                  num_attention_heads=4, num_key_value_heads=4, vocab_size=256, n_routed_experts=4,
                  n_shared_experts=1, first_k_dense_replace=1, moe_intermediate_size=32, num_experts_per_tok=2,
                  q_lora_rank=None, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12)
    (tmp_path / "config.json").write_text(json.dumps(config))
    code, result = run_json(capsys, "--model", str(tmp_path), "--method", "lora", "--set", "dropout=0",
                            "--gpu", "h100")
    assert code == 0 and result["config"]["model_family"] == "deepseek_v2"
    code = main(["estimate", "--model", str(tmp_path), "--method", "prefix"])
    assert code == 2 and "latent attention" in capsys.readouterr().err
