"""The fast commands import nothing heavy: checked in a fresh interpreter."""

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "textual"]

COMMANDS = [
    ["plan", "--goal", "behavior", "--task", "instruction", "--examples", "3000", "--model", "llama-3.1-8b",
     "--gpu", "rtx4090", "--json"],
    ["estimate", "--model", "llama-3.2-1b", "--method", "lora", "--batch-size", "4", "--seq-len", "512", "--json"],
    ["plugins", "--json"],
    ["models", "--json"],
    ["schema"],
]

PROBE = """
import contextlib, io, json, sys
from advisor.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    main({argv!r})
print(json.dumps([name for name in {heavy!r} if name in sys.modules]))
"""


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: argv[0])
def test_command_imports_nothing_heavy(argv):
    code = PROBE.format(argv=argv, heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
