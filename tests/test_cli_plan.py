"""`advisor plan` through the CLI: the contract's exit codes, one-line errors, profile files."""

import json

import pytest

from advisor.cli.main import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_is_one_document(capsys):
    code, out, err = run_cli(capsys, "plan", "--goal", "behavior", "--task", "instruction", "--examples", "3000",
                             "--model", "llama-3.2-1b", "--gpu", "a10g", "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["schema_version"] == 1 and plan["recommendation"]["method"] == "lora"
    assert plan["estimate"]["fits"] is True


def test_human_output_shows_recommendation_rationale_and_sources(capsys):
    code, out, _ = run_cli(capsys, "plan", "--examples", "3000", "--model", "llama-3.2-1b", "--gpu", "a10g")
    assert code == 0
    assert "peft · lora" in out and "method.lora-default" in out and "002_cb6d472d11844b9e.txt" in out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--goal", "telepathy"], "argument --goal: invalid choice: 'telepathy'"),
        (["--model", "llama-9b"], "unknown model 'llama-9b'; known: gpt2"),
        (["--gpu", "tpu"], "unknown gpu 'tpu'; known: cpu"),
        (["--examples", "-3"], "'examples'"),
        (["--method", "loar"], "unknown method 'loar'"),
        (["--profile", "missing.toml"], "cannot read 'missing.toml'"),
        (["--language", "klingon"], "'language'"),
        (["--corpus-tokens", "-5"], "'corpus_tokens'"),
        (["--task", "poetry"], "argument --task: invalid choice: 'poetry'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expected):
    code, out, err = run_cli(capsys, "plan", *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_unknown_profile_key_gets_did_you_mean(tmp_path, capsys):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"goal": "behavior", "exampels": 3000}))
    code, _, err = run_cli(capsys, "plan", "--profile", str(profile), "--json")
    assert code == 2
    assert err.strip() == "error: unknown key 'exampels'; did you mean 'examples'?"


@pytest.mark.parametrize("suffix, text", [
    (".toml", 'goal = "behavior"\nexamples = 40\nmodel = "llama-3.2-1b"\n'),
    (".yaml", "goal: behavior\nexamples: 40\nmodel: llama-3.2-1b\n"),
])
def test_profile_file_and_flags_override_it(tmp_path, capsys, suffix, text):
    profile = tmp_path / f"profile{suffix}"
    profile.write_text(text)
    code, out, _ = run_cli(capsys, "plan", "--profile", str(profile), "--json")
    assert code == 0 and json.loads(out)["recommendation"]["approach"] == "prompting"
    code, out, _ = run_cli(capsys, "plan", "--profile", str(profile), "--examples", "3000", "--gpu", "a10g", "--json")
    plan = json.loads(out)
    assert plan["profile"]["examples"] == 3000 and plan["recommendation"]["method"] == "lora"


def test_nothing_fits_exits_1_with_alternatives(capsys):
    code, out, _ = run_cli(capsys, "plan", "--model", "llama-3.1-70b", "--gpu", "t4", "--examples", "5000", "--json")
    assert code == 1
    plan = json.loads(out)
    assert plan["estimate"]["fits"] is False and plan["alternatives"]


def test_out_file_is_written_and_never_overwritten(tmp_path, capsys):
    out_file = tmp_path / "plan.json"
    args = ["plan", "--examples", "3000", "--model", "llama-3.2-1b", "--gpu", "a10g", "--out", str(out_file), "--json"]
    assert run_cli(capsys, *args)[0] == 0
    assert json.loads(out_file.read_text())["schema_version"] == 1
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "already exists" in err


def test_schema_command_prints_profile_and_plan(capsys):
    code, out, _ = run_cli(capsys, "schema")
    schemas = json.loads(out)
    assert code == 0 and set(schemas) == {"profile", "plan"}
    assert "examples" in schemas["profile"]["properties"]


def test_typo_in_a_nested_plan_key_gets_did_you_mean():
    from pydantic import ValidationError

    from advisor.errors import describe_validation_error
    from advisor.models import Plan, Profile
    from advisor.planner import make_plan

    document = json.loads(make_plan(Profile(examples=3000, model="llama-3.2-1b", gpu="a10g")).model_dump_json())
    document["training"]["hyperparameters"]["learning_rat"] = document["training"]["hyperparameters"].pop(
        "learning_rate")
    with pytest.raises(ValidationError) as caught:
        Plan.model_validate(document)
    assert describe_validation_error(caught.value, Plan).endswith("did you mean 'learning_rate'?")


def test_new_inputs_from_flags_and_from_a_profile_file(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "plan", "--goal", "knowledge", "--goal", "behavior", "--task", "chat",
                           "--examples", "4000", "--keep-general-ability", "--continual-updates", "--language", "DE",
                           "--corpus-tokens", "50000000", "--model", "llama-3.2-1b", "--gpu", "a100-80gb", "--json")
    assert code == 0
    plan = json.loads(out)
    profile = plan["profile"]
    assert profile["goal"] == "knowledge" and profile["goals"] == ["knowledge", "behavior"]
    assert profile["keep_general_ability"] and profile["continual_updates"] and profile["language"] == "de"
    assert [stage["name"] for stage in plan["stages"]] == ["continued-pretraining", "task-tuning"]
    assert plan["recommendation"]["complements"] == ["rag"]
    file = tmp_path / "profile.json"
    file.write_text(json.dumps({"goals": ["knowledge", "behavior"], "examples": 4000, "gpu": "l4"}))
    code, out, _ = run_cli(capsys, "plan", "--profile", str(file), "--json")
    assert code == 0 and json.loads(out)["recommendation"]["complements"] == ["rag"]


def test_a_plan_without_gpu_says_what_it_assumed(capsys):
    code, out, _ = run_cli(capsys, "plan", "--examples", "3000")
    assert code == 0 and "assumed:" in out and out.count("No --gpu given") == 1
    code, out, _ = run_cli(capsys, "plan", "--examples", "3000", "--json")
    assert any("No --gpu given" in warning for warning in json.loads(out)["warnings"])
    code, out, _ = run_cli(capsys, "plan", "--examples", "3000", "--gpu", "l4", "--json")
    assert json.loads(out)["assumptions"] == []
