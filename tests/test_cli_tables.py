"""The listing commands fit an 80-column terminal: nothing wider, descriptions wrapped in few lines, ids whole."""

import pytest

from advisor.cli.main import main


@pytest.fixture
def at_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")


@pytest.mark.parametrize("command", ["plugins", "models", "gpus"])
def test_tables_fit_80_columns(command, at_80_columns, capsys):
    assert main([command]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert not any("…" in line for line in lines)


def test_each_plugin_takes_at_most_four_lines(at_80_columns, capsys):
    main(["plugins"])
    out = capsys.readouterr().out
    blocks = [block for block in "\n".join(line.rstrip() for line in out.splitlines()).split("\n\n") if block.strip()]
    method_blocks = [block for block in blocks if "built-in" in block and "───" not in block]
    assert len(method_blocks) >= 8 and max(len(block.splitlines()) for block in method_blocks) <= 4


def test_models_show_the_hub_id_people_type(at_80_columns, capsys):
    main(["models"])
    assert "meta-llama/Llama-3.1-8B" in capsys.readouterr().out
