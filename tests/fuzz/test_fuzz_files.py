"""Hostile files: profiles, plan files and data files, generated or hand-made, through the real commands.

Every case asserts the contract (contract.py): exit 0/1/2, one `error:` line on exit 2, no traceback,
--json stdout one document, and the person's files byte-for-byte unchanged.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.models import Profile

from .contract import assert_contract, assert_unchanged, fingerprint, json_values, nested, run_cli

FUZZ = settings(max_examples=30, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
#: Profile keys the fuzzer fills; `data` and `model` get their own cases (they name paths).
PROFILE_KEYS = [key for key in Profile.model_fields if key not in ("data", "model")]


def _fresh(tmp_path: Path, name: str) -> Path:
    """A new empty folder per Hypothesis example (tmp_path is shared by the examples of one test)."""
    folder = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    return folder


def _write_settings(path: Path, values: dict) -> None:
    if path.suffix == ".json":
        path.write_text(json.dumps(values), encoding="utf-8")  # json.dumps writes inf as Infinity, as people do
    else:
        path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")


# -- profiles ----------------------------------------------------------------------------
profiles = st.dictionaries(st.sampled_from(PROFILE_KEYS + ["gol", "", "examples "]), json_values, max_size=5)


@FUZZ
@given(profiles, st.sampled_from([".json", ".yaml"]))
def test_generated_profiles(tmp_path, values, suffix):
    folder = _fresh(tmp_path, "profile")
    profile = folder / f"profile{suffix}"
    _write_settings(profile, values)
    before = fingerprint(folder)
    assert_contract(run_cli(["plan", "--profile", str(profile), "--json"]))
    assert_unchanged(before, folder)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([".json", ".yaml", ".toml", ".yml", ".txt", ""]))
def test_profiles_of_random_bytes(tmp_path, content, suffix):
    folder = _fresh(tmp_path, "bytes")
    profile = folder / f"profile{suffix}"
    profile.write_bytes(content)
    assert_contract(run_cli(["plan", "--profile", str(profile), "--json"]), codes=[0, 1, 2])
    assert_unchanged({profile.name: __import__("hashlib").sha256(content).hexdigest()}, folder)


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n" for previous, name in zip("abcdefg", "bcdefgh")
) + "goal: [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n"

HOSTILE_SETTINGS = {
    "deep.json": ('{"goal": ' + nested(100_000) + "}").encode(),
    "deep-but-parsable.json": ('{"goal": ' + nested(500) + "}").encode(),
    "deep.yaml": ("goal: " + nested(50_000) + "\n").encode(),
    "deep-block.yaml": ("goal:\n" + "".join(" " * level + "- \n" for level in range(1, 1500))).encode(),
    "deep.toml": ("goal = " + nested(1500) + "\n").encode(),
    "latin1.json": '{"goal": "café"}'.encode("latin-1"),
    "latin1.yaml": "goal: café\n".encode("latin-1"),
    "utf16.json": '{"goal": "behavior"}'.encode("utf-16"),
    "bom.json": b"\xef\xbb\xbf" + b'{"goal": "behavior"}',
    "laughs.yaml": LAUGHS.encode(),
    "empty.json": b"",
    "list.json": b"[1, 2]",
    "null.yaml": b"~\n",
    "tag.yaml": b"goal: !!python/object/apply:os.system ['true']\n",
    "bool-examples.json": b'{"examples": true}',
    "bool-flag.json": b'{"one_off": 1}',
    "string-bool.toml": b'one_off = "yes"\n',
    "inf-examples.json": b'{"examples": Infinity}',
    "nan-memory.json": b'{"gpu_memory_gib": NaN}',
    "huge-int.json": b'{"examples": ' + b"9" * 5000 + b"}",
    "float-seq.yaml": b"seq_len: 1.0e20\n",
    "inf.yaml": b"batch_size: .inf\n",
    "dup-keys.json": b'{"goal": "behavior", "goal": "knowlege"}',
    "unknown-key.toml": b'gaol = "behavior"\n',
    "binary.yaml": bytes(range(256)),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SETTINGS))
@pytest.mark.parametrize("command", ["plan", "wizard"])
def test_hostile_profiles(tmp_path, name, command):
    profile = tmp_path / name
    profile.write_bytes(HOSTILE_SETTINGS[name])
    before = fingerprint(tmp_path)
    outcome = run_cli([command, "--profile", str(profile)])
    assert_contract(outcome, codes=[0, 2] if command == "plan" else [2])
    assert_unchanged(before, tmp_path)
    if name not in ("bom.json", "deep-but-parsable.json"):
        assert outcome.code == 2, str(outcome)


# -- plan files ----------------------------------------------------------------------------
@functools.cache
def _plan_document() -> str:
    from advisor.planner import plan_for

    return plan_for(Profile(task="classification", examples=500)).model_dump_json()


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, path + (key,))
    elif isinstance(value, list) and value:
        for index, child in enumerate(value):
            yield from _leaves(child, path + (index,))
    else:
        yield path


def _replace(document, path, value):
    if not path:
        return value
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return document


def _mutated_plan_case(tmp_path, data, refused_only: bool):
    """One to three leaves of a real plan replaced by hostile values, then `execute --dry-run` (the plan
    is read first). `refused_only`: skip plans that still load (running them imports the training stack)."""
    document = json.loads(_plan_document())
    paths = sorted(_leaves(document), key=str)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        document = _replace(document, path, data.draw(json_values))
    folder = _fresh(tmp_path, "plan")
    plan = folder / "plan.json"
    plan.write_text(json.dumps(document), encoding="utf-8")
    if refused_only and _loads(plan):
        return
    (folder / "data.jsonl").write_text('{"text": "hi", "label": "a"}\n{"text": "yo", "label": "b"}\n', encoding="utf-8")
    before = fingerprint(folder)
    outcome = run_cli(["execute", str(plan), "--data", str(folder / "data.jsonl"), "--output-dir",
                       str(folder / "run"), "--dry-run", "--no-probe", "--json"])
    assert_contract(outcome)
    assert_unchanged(before, folder)


def _loads(plan: Path) -> bool:
    from advisor.documents import load_plan
    from advisor.errors import UserError

    try:
        load_plan(str(plan))
    except UserError:
        return False
    return True


@FUZZ
@given(st.data())
def test_mutated_plan_files_are_refused_in_one_line(tmp_path, data):
    _mutated_plan_case(tmp_path, data, refused_only=True)


@pytest.mark.slow
@settings(FUZZ, max_examples=100)
@given(st.data())
def test_mutated_plan_files_are_refused_or_run(tmp_path, data):
    _mutated_plan_case(tmp_path, data, refused_only=False)


PLAN_EDITS = {
    "seed-negative": (("training", "data", "seed"), -1),
    "seed-too-big": (("training", "data", "seed"), 2**32),
    "epochs-huge": (("training", "hyperparameters", "epochs"), 1e20),
    "epochs-inf": (("training", "hyperparameters", "epochs"), float("inf")),
    "seq-len-huge": (("training", "hyperparameters", "seq_len"), 10**20),
    "batch-inf": (("training", "hyperparameters", "batch_size"), float("inf")),
    "batch-true": (("training", "hyperparameters", "batch_size"), True),
    "lr-nan": (("training", "hyperparameters", "learning_rate"), float("nan")),
    "examples-true": (("profile", "examples"), True),
    "kfold-huge": (("training", "data", "kfold"), 10**9),
}
#: Plans that load, refused when the run is prepared (which imports the training stack: slow).
PLAN_EDITS_AT_PREPARE = {
    "method-hp-deep": (("training", "hyperparameters", "method"), {"r": json.loads(nested(90))}),
}


@pytest.mark.parametrize("edit", [*sorted(PLAN_EDITS),
                                  *(pytest.param(edit, marks=pytest.mark.slow) for edit in PLAN_EDITS_AT_PREPARE)])
def test_plan_numbers_out_of_range_are_one_line(tmp_path, edit):
    path, value = {**PLAN_EDITS, **PLAN_EDITS_AT_PREPARE}[edit]
    document = _replace(json.loads(_plan_document()), path, value)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(document), encoding="utf-8")
    (tmp_path / "data.jsonl").write_text('{"text": "hi", "label": "a"}\n', encoding="utf-8")
    before = fingerprint(tmp_path)
    outcome = run_cli(["execute", str(plan), "--data", str(tmp_path / "data.jsonl"), "--output-dir",
                       str(tmp_path / "run"), "--dry-run", "--no-probe"])
    assert_contract(outcome, codes=[2])
    assert any(what in outcome.err for what in ("error: plan ", "error: plan.json ", "not valid JSON")), str(outcome)
    assert_unchanged(before, tmp_path)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["latin1.json", "deep.json", "deep.yaml", "laughs.yaml", "utf16.json", "binary.yaml"])
def test_hostile_plan_files(tmp_path, name):
    plan = tmp_path / name
    plan.write_bytes(HOSTILE_SETTINGS[name])
    (tmp_path / "data.jsonl").write_text('{"text": "hi", "label": "a"}\n', encoding="utf-8")
    before = fingerprint(tmp_path)
    outcome = run_cli(["execute", str(plan), "--data", str(tmp_path / "data.jsonl"), "--output-dir",
                       str(tmp_path / "run"), "--dry-run"])
    assert_contract(outcome, codes=[2])
    assert_unchanged(before, tmp_path)


# -- data files ----------------------------------------------------------------------------
cells = st.one_of(st.text(max_size=20), st.sampled_from(['"', '""', "a,b", "a\tb", "line\nbreak", "\r", "\\", "=1+1"]))
csv_texts = st.lists(st.lists(cells, min_size=1, max_size=4).map(lambda row: ",".join(row)), min_size=1,
                     max_size=6).map(lambda rows: "\n".join(rows) + "\n")
jsonl_texts = st.lists(st.one_of(json_values.map(json.dumps),
                                 st.dictionaries(st.sampled_from(["text", "label", "instruction", "output", "input",
                                                                  "messages", "instances", "x"]),
                                                 json_values, max_size=3).map(json.dumps),
                                 st.text(max_size=20)), min_size=1, max_size=5).map("\n".join)
data_files = st.one_of(
    st.tuples(st.just("data.csv"), csv_texts.map(lambda text: text.encode("utf-8", "surrogatepass"))),
    st.tuples(st.just("data.tsv"), csv_texts.map(lambda text: text.replace(",", "\t").encode("utf-8", "surrogatepass"))),
    st.tuples(st.just("data.jsonl"), jsonl_texts.map(lambda text: text.encode("utf-8", "surrogatepass"))),
    st.tuples(st.sampled_from(["data.json", "data.jsonl", "data.csv", "data.parquet"]), st.binary(max_size=200)),
)


def _data_commands(data: Path, out: Path) -> list[list[str]]:
    return [["validate", str(data), "--json"], ["plan", "--data", str(data), "--json"],
            ["split", str(data), "--out", str(out), "--json"]]


@FUZZ
@given(data_files)
def test_generated_data_files(tmp_path, file):
    name, content = file
    folder = _fresh(tmp_path, "data")
    (folder / "in").mkdir()
    data = folder / "in" / name
    data.write_bytes(content)
    before = fingerprint(folder / "in")
    for argv in _data_commands(data, folder / "out"):
        assert_contract(run_cli(argv))
    assert_unchanged(before, folder / "in")


def _wide_csv(columns: int) -> bytes:
    header = ",".join(["text", "label"] + [f"c{i}" for i in range(columns)])
    rows = [",".join([f"row {r}", "ab"[r % 2]] + ["1"] * columns) for r in range(4)]
    return ("\n".join([header, *rows]) + "\n").encode()


HOSTILE_DATA = {
    "deep-line.jsonl": (b'{"text": ' + nested(100_000).encode() + b', "label": "a"}\n{"text": "ok", "label": "b"}\n', 1),
    "deep-array.json": (nested(100_000).encode(), 2),
    "deep-record.json": (('[{"text": ' + nested(200) + ', "label": "a"}]').encode(), 2),
    "deep-record.jsonl": (('{"text": ' + nested(200) + ', "label": "a"}\n{"text": "b", "label": "b"}').encode(), 1),
    "utf16.jsonl": ('{"text": "hi", "label": "a"}\n'.encode("utf-16"), 2),
    "latin1.csv": ("text,label\ncafé,a\n".encode("latin-1"), 1),
    "all-latin1.csv": ("téxt,label\ncafé,a\n".encode("latin-1"), 2),
    "half-latin1.csv": ("text,label\ncafé,a\n".encode("latin-1") + b"ok,b\n", 1),
    "nul.jsonl": (b'{"text": "a\x00b", "label": "a"}\n', 2),
    "bom-only.csv": (b"\xef\xbb\xbf", 2),
    "blank.jsonl": (b"\n\n  \n", 2),
    "header-only.csv": (b"text,label\n", 2),
    "duplicate-header.csv": (b"text,text\na,b\n", 2),
    "unbalanced.csv": (b'text,label\n"open,a\nb,c\n', 1),
    "scalar.json": (b"42", 2),
    "object.json": (b'{"rows": []}', 2),
    "inf-label.jsonl": (b'{"text": "a", "label": Infinity}\n{"text": "b", "label": NaN}\n', 2),
    "nan-label.jsonl": (b'{"text": "a", "label": NaN}\n{"text": "b", "label": "x"}\n', 1),
    "huge-number.jsonl": (b'{"text": "a", "label": ' + b"9" * 5000 + b'}\n{"text": "b", "label": "x"}\n', 1),
    "long-line.jsonl": (b'{"text": "' + b"x" * 2_000_000 + b'", "label": "a"}\n', 0),
    "wide.csv": (_wide_csv(20_000), 0),
    "not-parquet.parquet": (b"PAR1 not really", 2),
    "crlf.csv": (b"text,label\r\nhi,a\r\nyo,b\r\n", 0),
    "lone-cr.csv": (b"text,label\rhi,a\ryo,b\r", 0),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_DATA))
def test_hostile_data_files(tmp_path, name):
    content, expected = HOSTILE_DATA[name]
    (tmp_path / "in").mkdir()
    data = tmp_path / "in" / name
    data.write_bytes(content)
    before = fingerprint(tmp_path / "in")
    outcome = run_cli(["validate", str(data), "--json"])
    assert_contract(outcome)
    assert outcome.code == expected, str(outcome)
    for argv in _data_commands(data, tmp_path / "out")[1:]:
        assert_contract(run_cli(argv))
    assert_unchanged(before, tmp_path / "in")


def test_a_100k_column_csv_is_read_in_seconds(tmp_path):
    """The readers are linear in columns: 100,000 columns once took forever (quadratic header checks)."""
    import time

    data = tmp_path / "wide.csv"
    data.write_bytes(_wide_csv(100_000))
    started = time.perf_counter()
    outcome = run_cli(["validate", str(data), "--json"])
    elapsed = time.perf_counter() - started
    assert_contract(outcome, codes=[0])
    assert len(json.loads(outcome.out)["columns"]) == 100_002
    assert elapsed < 30, f"{elapsed:.1f} s"  # ~1 s on an idle core; quadratic took hours
    unknown = tmp_path / "unknown.csv"
    unknown.write_bytes(_wide_csv(100_000).replace(b"text,label,", b"a,b,", 1))
    refused = run_cli(["validate", str(unknown)])
    assert_contract(refused, codes=[2])
    assert len(refused.err) < 2200


def test_file_names_that_are_not_utf8(tmp_path):
    """Linux allows any bytes in a name; Python hands them over as lone surrogates, which JSON must escape."""
    folder = tmp_path / os.fsdecode(b"caf\xe9")
    folder.mkdir()
    data = folder / os.fsdecode(b"\xfe.csv")
    data.write_text("text,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(10)), encoding="utf-8")
    before = fingerprint(folder)
    for argv in (["validate", str(data), "--json"], ["plan", "--data", str(data), "--json"],
                 ["split", str(data), "--out", str(tmp_path / os.fsdecode(b"out\xff")), "--json"],
                 ["plan", "--data", str(data), "--out", str(tmp_path / os.fsdecode(b"plan\xfd.json"))],
                 ["validate", str(data), "--text-column", os.fsdecode(b"\xff")], ["validate", str(data)]):
        outcome = run_cli(argv)
        assert_contract(outcome, codes=[0, 2])
        assert outcome.code == (2 if "--text-column" in argv else 0), str(outcome)
    assert_unchanged(before, folder)
    assert json.loads((tmp_path / os.fsdecode(b"plan\xfd.json")).read_text(encoding="utf-8"))["profile"]["data"] == str(data)


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    """Reading a named pipe would wait forever for a writer."""
    fifo = tmp_path / "data.jsonl"
    os.mkfifo(fifo)
    for argv in (["validate", str(fifo)], ["plan", "--profile", str(fifo)], ["split", str(fifo), "--out", "o"],
                 ["validate", str(tmp_path)]):
        assert_contract(run_cli(argv), codes=[2])


def test_a_directory_of_hostile_files(tmp_path):
    (tmp_path / "in").mkdir()
    for name, (content, _) in HOSTILE_DATA.items():
        if len(content) < 100_000:
            (tmp_path / "in" / name).write_bytes(content)
    before = fingerprint(tmp_path / "in")
    for argv in _data_commands(tmp_path / "in", tmp_path / "out"):
        assert_contract(run_cli(argv))
    assert_unchanged(before, tmp_path / "in")


def test_validate_against_a_hostile_file(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "hi", "label": "a"}\n{"text": "yo", "label": "b"}\n', encoding="utf-8")
    for name in ("deep-array.json", "utf16.jsonl", "deep-line.jsonl"):
        against = tmp_path / name
        against.write_bytes(HOSTILE_DATA[name][0])
        assert_contract(run_cli(["validate", str(data), "--against", str(against), "--json"]))
