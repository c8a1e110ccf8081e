"""`advisor` with no arguments (and `advisor wizard`) opens the wizard; other commands never load textual."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from advisor.cli import main as cli_main
from advisor.models import Profile


def test_no_arguments_and_wizard_open_the_app_built_by_build_app(monkeypatch, tmp_path):
    opened = []

    class FakeApp:
        def run(self):
            opened.append(self.profile)

    def fake_build_app(profile):
        app = FakeApp()
        app.profile = profile
        return app

    monkeypatch.setattr("advisor.tui.app.build_app", fake_build_app)
    monkeypatch.setattr("advisor.cli.wizard.no_terminal_reason", lambda: None)
    profile_file = tmp_path / "profile.json"
    profile_file.write_text('{"goal": "knowledge", "gpu": "rtx4090"}')
    assert cli_main.main([]) == 0
    assert cli_main.main(["wizard", "--profile", str(profile_file)]) == 0
    assert opened == [Profile(), Profile(goal="knowledge", gpu="rtx4090")]


def test_a_bad_profile_is_one_line_before_the_app_opens(tmp_path, capsys):
    profile_file = tmp_path / "profile.json"
    profile_file.write_text('{"goal": "knowlege"}')
    assert cli_main.main(["wizard", "--profile", str(profile_file)]) == 2
    assert capsys.readouterr().err.startswith("error: invalid value 'knowlege' for 'goal'")


@pytest.mark.parametrize("term", ["xterm-256color", "dumb"])
def test_without_a_terminal_the_wizard_is_one_line_and_exit_2(term):
    """`advisor < /dev/null` and TERM=dumb used to wait forever for keys."""
    env = {**os.environ, "TERM": term}
    done = subprocess.run([sys.executable, "-m", "advisor"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: the wizard needs an interactive terminal")
    assert len(done.stderr.splitlines()) == 1
    assert done.stdout == ""


@pytest.mark.parametrize("command", [["--help"], ["plan", "--json"]])
def test_other_commands_do_not_import_textual(command):
    code = (
        "import sys, contextlib, io\n"
        "from advisor.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({command!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'textual'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_term_dumb_alone_is_refused(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    from advisor.cli.wizard import no_terminal_reason

    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr("sys.stdout", Tty())
    assert no_terminal_reason() == "TERM is dumb"
    monkeypatch.setenv("TERM", "xterm")
    assert no_terminal_reason() is None
