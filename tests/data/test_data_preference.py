"""Preference pairs: both of TRL's layouts, bad pairs with their lines, identical pairs and length bias."""

from __future__ import annotations

import json

from advisor.cli.main import main
from advisor.data import validate_file

USER = {"role": "user", "content": "How do I reset my card PIN?"}
GOOD = {"role": "assistant", "content": "Open the app, choose Card, then Reset PIN."}
BAD = {"role": "assistant", "content": "No idea."}


def write(tmp_path, rows, name="pairs.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_text_pairs_and_chat_pairs_are_read_in_trl_layouts(tmp_path):
    texts = validate_file(str(write(tmp_path, [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}], "t.jsonl")))
    assert (texts.ok, texts.format) == (True, "preference")
    chats = write(tmp_path, [{"chosen": [USER, GOOD], "rejected": [USER, BAD]}], "c.jsonl")
    from advisor.data import load_records

    record = load_records(str(chats)).records[0]
    assert record == {"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}


def test_bad_pairs_are_listed_by_line(tmp_path):
    rows = [
        {"prompt": "a", "chosen": "b", "rejected": "c"},
        {"prompt": "a", "chosen": [GOOD], "rejected": "c"},
        {"prompt": "a", "chosen": "", "rejected": "c"},
        {"chosen": [USER, GOOD], "rejected": [{"role": "user", "content": "other"}, BAD]},
        {"chosen": "b", "rejected": "c"},
        {"prompt": [USER], "chosen": [USER], "rejected": [BAD]},
    ]
    report = validate_file(str(write(tmp_path, rows)))
    by_line = {error.line: error.message for error in report.errors}
    assert sorted(by_line) == [2, 3, 4, 5, 6]
    assert "both be texts or both lists" in by_line[2]
    assert "'chosen' is empty" in by_line[3]
    assert "share no prompt turns" in by_line[4]
    assert "needs a prompt text" in by_line[5]
    assert "start with the assistant" in by_line[6]


def test_identical_pairs_and_length_bias_are_reported(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "a long and careful answer " * 3, "rejected": "short"} for i in range(8)]
    rows.append({"prompt": "same", "chosen": "same answer", "rejected": "same answer"})
    report = validate_file(str(write(tmp_path, rows)))
    assert report.stats.preference.identical_pairs == 1
    assert report.stats.preference.identical_lines == [9]
    assert report.stats.preference.chosen_longer_share == round(8 / 9, 4)
    assert any("line 9" in warning and "no preference" in warning for warning in report.warnings)
    assert any("longer than the rejected one in 89% of pairs" in warning for warning in report.warnings)


def test_balanced_pairs_get_no_length_warning(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "x" * (10 + i % 2 * 5), "rejected": "y" * (15 - i % 2 * 5)} for i in range(10)]
    report = validate_file(str(write(tmp_path, rows)))
    assert not [warning for warning in report.warnings if "DPO can learn length" in warning]


def test_validate_cli_accepts_the_preference_format(tmp_path, capsys):
    path = write(tmp_path, [{"prompt": "a", "chosen": "b", "rejected": "c"}])
    assert main(["validate", str(path), "--format", "preference", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "preference"
