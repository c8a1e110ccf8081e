"""advisor replaces only what it wrote: user files of many kinds, in run and split folders, under every variant.

Each case drops a seeded mix of user files (spreadsheets, photos, hidden and
empty files, unicode names, names advisor itself uses, a file inside the run's
own data folder, an edited model card, a symbolic link) into a copy of a
completed run or of a split, then runs every command variant that could
replace something. The contract each time: exit 2, one line on stderr that
names the foreign files (when --overwrite asked to replace them), and the
sha256 of every file under the test folder unchanged.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from pathlib import Path

import pytest

from advisor.cli.main import main

from conftest import alpaca_records, make_plan, run_cli, save_plan, write_jsonl

CASES = 6


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root (links by their target path), and the list of folders."""
    state = {}
    for folder, directories, files in os.walk(root):
        for name in directories:
            path = Path(folder) / name
            state[str(path.relative_to(root)) + "/"] = os.readlink(path) if path.is_symlink() else "dir"
        for name in files:
            path = Path(folder) / name
            relative = str(path.relative_to(root))
            state[relative] = ("link:" + os.readlink(path)) if path.is_symlink() else \
                hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def user_files(rng: random.Random, folder: Path, outside: Path) -> list[str]:
    """Drop 1-4 user files of random kinds into `folder`; their relative names."""
    def binary(size):
        return bytes(rng.randrange(256) for _ in range(size))

    kinds = {
        "budget.xlsx": lambda path: path.write_bytes(binary(2048)),
        "photos/cat.jpg": lambda path: path.write_bytes(b"\xff\xd8\xff" + binary(512)),
        "notes.txt": lambda path: path.write_text("my notes\n"),
        "résumé 2026.txt": lambda path: path.write_text("unicode name\n", encoding="utf-8"),
        ".env": lambda path: path.write_text("TOKEN=mine\n"),
        "empty.dat": lambda path: path.write_bytes(b""),
        "mine/metrics.json": lambda path: path.write_text('{"mine": true}\n'),
        "train.py": lambda path: path.write_text("print('my own training script')\n"),
        "accelerate_config.yaml": lambda path: path.write_text("compute_environment: MINE\n"),
        "shortcut": lambda path: path.symlink_to(outside),
    }
    chosen = rng.sample(sorted(kinds), rng.randint(1, 4))
    for name in chosen:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        kinds[name](path)
    return chosen


@pytest.fixture(scope="module")
def completed(tmp_path_factory, tiny_llama):
    """A completed run (1 step) with its plan and data; each test works on a copy."""
    root = tmp_path_factory.mktemp("completed")
    data = write_jsonl(root / "alpaca.jsonl", alpaca_records(16))
    plan = save_plan(make_plan(str(tiny_llama)), root / "plan.json")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    code = main(["execute", str(plan), "--data", str(data), "--output-dir", str(root / "run"), "--max-steps", "1",
                 "--no-probe"])
    assert code == 0
    return root


@pytest.fixture
def workspace(tmp_path, completed):
    shutil.copy(completed / "alpaca.jsonl", tmp_path / "alpaca.jsonl")
    shutil.copy(completed / "plan.json", tmp_path / "plan.json")
    shutil.copytree(completed / "run", tmp_path / "run", symlinks=True)
    (tmp_path / "outside.txt").write_text("a file the link points at\n")
    return tmp_path


EXECUTE_VARIANTS = [
    ("--overwrite",),
    ("--overwrite", "--dry-run"),
    ("--backend", "accelerate", "--dry-run", "--overwrite"),
    ("--backend", "accelerate", "--overwrite", "--max-steps", "1"),
    ("--dry-run",),
    ("--backend", "accelerate", "--dry-run"),
]


def assert_one_line_refusal(code: int, stderr: str, named: list[str]) -> None:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    for name in named[:5]:
        assert f"'{name}'" in lines[0], (name, lines[0])


@pytest.mark.parametrize("case", range(CASES))
def test_execute_never_replaces_user_files_in_a_run_folder(workspace, case, capsys):
    rng = random.Random(case)
    run = workspace / "run"
    added = user_files(rng, run, workspace / "outside.txt")
    if rng.random() < 0.5:
        with open(run / "README.md", "a", encoding="utf-8") as card:  # the user's own notes in our model card
            card.write("\nmy notes on this model\n")
        added.append("README.md")
    if rng.random() < 0.5:
        (run / "data" / "extra.csv").write_text("text,label\nmine,1\n")
        added.append("data/extra.csv")
    before = snapshot(workspace)
    foreign = sorted(name for name in added)
    for variant in EXECUTE_VARIANTS:
        code, _, stderr = run_cli(capsys, "execute", workspace / "plan.json", "--data", workspace / "alpaca.jsonl",
                                  "--output-dir", run, *variant)
        replacing = "--overwrite" in variant
        assert_one_line_refusal(code, stderr, foreign if replacing else [])
        assert ("advisor did not write" in stderr) == replacing, (variant, stderr)
        assert snapshot(workspace) == before, variant


def test_a_foreign_run_manifest_does_not_make_a_folder_ours(tmp_path, completed, capsys):
    folder = tmp_path / "spreadsheets"
    folder.mkdir()
    (folder / "run-manifest.json").write_text('{"schema_version": 1, "mine": true}')
    (folder / "q1.xlsx").write_bytes(b"PK\x03\x04 spreadsheet")
    before = snapshot(tmp_path)
    for variant in (("--overwrite",), ("--backend", "accelerate", "--dry-run", "--overwrite")):
        code, _, stderr = run_cli(capsys, "execute", completed / "plan.json", "--data", completed / "alpaca.jsonl",
                                  "--output-dir", folder, *variant)
        assert_one_line_refusal(code, stderr, ["q1.xlsx", "run-manifest.json"])
        assert snapshot(tmp_path) == before


def test_launch_files_never_replace_the_users_own(tmp_path, completed, capsys):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.py").write_text("print('mine')\n")
    (folder / "accelerate_config.yaml").write_text("distributed_type: MINE\n")
    before = snapshot(tmp_path)
    for variant, named in (((), []), (("--overwrite",), ["accelerate_config.yaml", "train.py"])):
        code, _, stderr = run_cli(capsys, "execute", completed / "plan.json", "--data", completed / "alpaca.jsonl",
                                  "--output-dir", folder, "--backend", "accelerate", "--dry-run", *variant)
        assert_one_line_refusal(code, stderr, named)
        assert snapshot(tmp_path) == before


def test_launch_files_are_written_again_over_their_own_earlier_copy(tmp_path, completed, capsys):
    folder = tmp_path / "launch"
    arguments = ["execute", completed / "plan.json", "--data", completed / "alpaca.jsonl", "--output-dir", folder,
                 "--backend", "accelerate", "--dry-run"]
    assert run_cli(capsys, *arguments)[0] == 0
    assert run_cli(capsys, *arguments)[0] == 0  # ours: no --overwrite needed
    (folder / "train.py").write_text("print('edited by hand')\n")
    code, _, stderr = run_cli(capsys, *arguments, "--overwrite")
    assert_one_line_refusal(code, stderr, ["train.py"])
    assert (folder / "train.py").read_text() == "print('edited by hand')\n"


def test_an_accelerate_dry_run_changes_nothing_of_a_previous_run(workspace, capsys):
    before = snapshot(workspace)
    code, _, stderr = run_cli(capsys, "execute", workspace / "plan.json", "--data", workspace / "alpaca.jsonl",
                              "--output-dir", workspace / "run", "--backend", "accelerate", "--dry-run", "--overwrite")
    assert code == 0, stderr
    assert "nothing written" in stderr
    assert snapshot(workspace) == before


def test_a_run_stopped_before_its_first_checkpoint_puts_the_previous_one_back(workspace, capsys, monkeypatch):
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("advisor.backends.local.load_model", stopped)
    before = snapshot(workspace)
    code, _, stderr = run_cli(capsys, "execute", workspace / "plan.json", "--data", workspace / "alpaca.jsonl",
                              "--output-dir", workspace / "run", "--overwrite", "--no-probe", "--max-steps", "1")
    assert code == 130, stderr
    assert f"the previous run is back in '{workspace / 'run'}'" in stderr
    assert snapshot(workspace) == before


def split_workspace(tmp_path: Path, capsys) -> tuple[Path, Path]:
    data = write_jsonl(tmp_path / "alpaca.jsonl", alpaca_records(24))
    out = tmp_path / "split"
    assert run_cli(capsys, "split", data, "--out", out, "--kfold", "3")[0] == 0
    return data, out


@pytest.mark.parametrize("case", range(CASES))
def test_split_never_replaces_user_files(tmp_path, case, capsys):
    rng = random.Random(100 + case)
    data, out = split_workspace(tmp_path, capsys)
    (tmp_path / "outside.txt").write_text("linked\n")
    added = user_files(rng, out, tmp_path / "outside.txt")
    extra = rng.choice(["test.jsonl", "fold-3/train.jsonl", "fold-0/notes.txt", "fold-1/train.jsonl"])
    if extra == "fold-1/train.jsonl":
        with open(out / extra, "a", encoding="utf-8") as handle:  # a split file edited by hand
            handle.write('{"instruction": "mine", "input": "", "output": "mine"}\n')
    else:
        (out / extra).parent.mkdir(exist_ok=True)
        (out / extra).write_text('{"text": "mine"}\n')
    foreign = sorted([*added, extra])
    before = snapshot(tmp_path)
    for variant in ((), ("--overwrite",), ("--overwrite", "--validation-ratio", "0.5")):
        code, _, stderr = run_cli(capsys, "split", data, "--out", out, *variant)
        assert_one_line_refusal(code, stderr, foreign if variant else [])
        assert snapshot(tmp_path) == before


def test_split_never_touches_its_input_inside_out(tmp_path, capsys):
    data, out = split_workspace(tmp_path, capsys)
    inside = shutil.copy(data, out / "my-data.jsonl")
    before = snapshot(tmp_path)
    for source in (inside, out / "fold-0" / "train.jsonl"):
        code, _, stderr = run_cli(capsys, "split", source, "--out", out, "--overwrite")
        assert_one_line_refusal(code, stderr, [])
        assert "is the input file" in stderr
        assert snapshot(tmp_path) == before
