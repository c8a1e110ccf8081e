"""The console script's process set-up (advisor.cli.run): what it skips for a fast `plan`, and what it keeps."""

import json
import os
import subprocess
import sys

import pytest

from advisor.cli import pydantic_plugins

#: Runs the console script on the arguments given, then reports what the process held at exit and how it ended.
REPORT = """
import atexit, gc, os, sys
def report(ending):
    print(f"gc={gc.isenabled()} metadata={'importlib.metadata' in sys.modules} exit={ending}", file=sys.stderr)
    sys.stderr.flush()
hard_exit = os._exit
os._exit = lambda code: (report("hard"), hard_exit(code))
atexit.register(report, "normal")
sys.argv = ["advisor", *sys.argv[1:]]
from advisor.cli import run
run()
"""


def _report(tmp_path, *args: str, **env: str) -> str:
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, "-c", REPORT, *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**environment, "HF_HUB_OFFLINE": "1", **env}, timeout=120)
    assert done.returncode in (0, 2), done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_a_plan_runs_without_the_collector_and_without_importlib_metadata_and_ends_hard(tmp_path):
    _report(tmp_path, "plan", "--json")  # the first run may list the entry points and remember them
    assert _report(tmp_path, "plan", "--json") == "gc=False metadata=False exit=hard"


def test_commands_that_read_data_or_train_collect_as_usual(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "hello", "label": "greeting"}\n', encoding="utf-8")
    for args in (["validate", str(data)], ["plan", "--json", f"--data={data}"], ["execute", "--help"]):
        reported = _report(tmp_path, *args)
        assert reported.startswith("gc=True") and reported.endswith("exit=normal"), (args, reported)


def test_a_users_own_pydantic_plugin_setting_looks_for_plugins(tmp_path):
    assert _report(tmp_path, "plan", "--json", PYDANTIC_DISABLE_PLUGINS="") == "gc=False metadata=True exit=hard"


def test_a_hard_exit_still_delivers_the_whole_answer_and_its_status(tmp_path):
    done = subprocess.run([sys.executable, "-m", "advisor", "plan", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and json.loads(done.stdout)["schema_version"] == 1
    refused = subprocess.run([sys.executable, "-m", "advisor", "plan", "--examples", "-1"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1


@pytest.fixture
def no_loader(monkeypatch):
    """This process as if pydantic had not loaded its plugin loader yet."""
    monkeypatch.delitem(sys.modules, pydantic_plugins.LOADER, raising=False)
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)


def test_the_stand_in_answers_no_plugins_and_defers_any_other_name_to_the_real_loader(no_loader):
    pydantic_plugins.turn_off()
    stand_in = sys.modules[pydantic_plugins.LOADER]
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    assert stand_in.get_plugins() == ()
    assert stand_in.PYDANTIC_ENTRY_POINT_GROUP == "pydantic"  # a name the stand-in lacks
    assert sys.modules[pydantic_plugins.LOADER] is not stand_in  # the real loader took its place


@pytest.mark.parametrize("value", ["", "1", "some_plugin"])
def test_no_stand_in_under_a_users_value(no_loader, monkeypatch, value):
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", value)
    pydantic_plugins.turn_off()
    assert pydantic_plugins.LOADER not in sys.modules
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == value
