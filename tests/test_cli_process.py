"""The console script's process set-up (advisor.cli.run): what it skips for a fast `plan`, and what it keeps."""

import os
import subprocess
import sys

import pytest

from advisor.cli import pydantic_plugins

#: Runs the console script on the arguments given, then reports what the process held at exit.
REPORT = """
import atexit, gc, sys
atexit.register(lambda: print(f"gc={gc.isenabled()} metadata={'importlib.metadata' in sys.modules}", file=sys.stderr))
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


def test_a_plan_runs_without_the_collector_and_without_importlib_metadata(tmp_path):
    _report(tmp_path, "plan", "--json")  # the first run may list the entry points and remember them
    assert _report(tmp_path, "plan", "--json") == "gc=False metadata=False"


def test_commands_that_read_data_or_train_collect_as_usual(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "hello", "label": "greeting"}\n', encoding="utf-8")
    assert _report(tmp_path, "validate", str(data)).startswith("gc=True")
    assert _report(tmp_path, "plan", "--json", f"--data={data}").startswith("gc=True")
    assert _report(tmp_path, "execute", "--help").startswith("gc=True")


def test_a_users_own_pydantic_plugin_setting_looks_for_plugins(tmp_path):
    assert _report(tmp_path, "plan", "--json", PYDANTIC_DISABLE_PLUGINS="") == "gc=False metadata=True"


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
