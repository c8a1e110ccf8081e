"""A few hostile runs in real processes: no terminal, closed or full output, and signals of misuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .contract import assert_contract, run_process


@pytest.mark.parametrize("argv, env", [
    ([], {"TERM": "xterm-256color"}),
    ([], {"TERM": "dumb"}),
    (["wizard"], {"TERM": ""}),
])
def test_the_wizard_without_a_terminal_exits_at_once(argv, env):
    outcome = run_process(argv, env=env, timeout=60)  # a hang fails here as TimeoutExpired
    assert_contract(outcome, codes=[2])
    assert "interactive terminal" in outcome.err


def test_a_full_disk_on_stdout_is_one_line():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "advisor", "plan", "--json"], stdout=full, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert "Traceback" not in done.stderr
    assert done.returncode != 0


def test_json_from_a_real_process_is_one_document(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) + "\n" for i in range(20)),
                    encoding="utf-8")
    for argv in (["plan", "--json", "--data", str(data)], ["validate", str(data), "--json"], ["plugins", "--json"],
                 ["estimate", "--model", "gpt2", "--method", "lora", "--json"]):
        outcome = run_process(argv)
        assert_contract(outcome, codes=[0])
        json.loads(outcome.out)


# -- the last line of defence in advisor.cli.main ------------------------------------------
@pytest.mark.parametrize("raised, message", [
    (RecursionError("maximum recursion depth exceeded"), "error: an input is nested more than 100 levels deep"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "error: an input is not UTF-8 text"),
    (PermissionError(13, "Permission denied", "/locked/plan.json"), "error: cannot use '/locked/plan.json': "
                                                                    "Permission denied"),
    (__import__("advisor.errors", fromlist=["UserError"]).UserError("two\nlines\n" + "x" * 5000),
     "error: two lines xxx"),
])
def test_what_slips_through_is_still_one_line(monkeypatch, raised, message):
    from advisor.cli import plugins

    from .contract import run_cli

    def handler(args):
        raise raised

    monkeypatch.setattr(plugins, "run", handler)
    outcome = run_cli(["plugins"])
    assert_contract(outcome, codes=[2])
    assert outcome.err.startswith(message) and len(outcome.err) < 2100
