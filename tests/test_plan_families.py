"""Plans for the later families: methods that cannot train a model are left out with the reason."""

import json

from advisor.cli.main import main

PROFILE = ["plan", "--goal", "behavior", "--task", "instruction", "--examples", "3000", "--quality", "high",
           "--gpu", "h100"]


def test_a_moe_plan_leaves_out_bottleneck_adapters_with_the_reason(capsys):
    code = main([*PROFILE, "--model", "qwen3-30b-a3b", "--json"])
    plan = json.loads(capsys.readouterr().out)
    assert code == 0 and plan["recommendation"]["method"] != "adapter"
    adapter = next(alt for alt in plan["alternatives"] if alt["method"] == "adapter")
    assert not adapter["fits"]
    assert adapter["why_not"].startswith("unavailable: ")
    assert "bottleneck adapters need a linear MLP output" in adapter["why_not"]


def test_asking_for_a_method_that_cannot_train_the_model_is_one_line_exit_2(capsys):
    code = main([*PROFILE, "--model", "gpt-oss-20b", "--method", "adapter"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "--method adapter cannot be planned for gpt-oss-20b" in err and "linear MLP output" in err
