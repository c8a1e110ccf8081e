"""`advisor` with no arguments (and `advisor wizard`) opens the wizard; other commands never load textual."""

from __future__ import annotations

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
