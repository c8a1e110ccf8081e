"""advisor/ownership.py: which files in a folder the manifest proves advisor's."""

from __future__ import annotations

import pytest

from advisor.errors import UserError
from advisor.ownership import foreign_files, refuse_foreign, sha256_of


def test_only_listed_unchanged_files_owned_folders_and_names_are_advisors(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "README.md").write_text("card")
    (tmp_path / ".metrics.json.tmp").write_text("{")  # an interrupted rewrite of a listed file
    (tmp_path / ".notes.txt.tmp").write_text("")  # the twin of a file that is not listed
    (tmp_path / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (tmp_path / "checkpoints" / "checkpoint-2" / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "progress.jsonl").write_text('{"step": 1}\n')
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "link").symlink_to(tmp_path / "metrics.json")
    listed = {"metrics.json": sha256_of(tmp_path / "metrics.json"), "README.md": "0" * 64, "gone.txt": "1" * 64}
    found = foreign_files(tmp_path, listed, directories=["checkpoints"], by_name=["progress.jsonl"])
    assert found == [".notes.txt.tmp", "README.md", "link", "photo.jpg"]


def test_the_refusal_is_one_line_naming_five_and_counting_the_rest(tmp_path):
    names = [f"file-{n}.txt" for n in range(7)]
    with pytest.raises(UserError) as refused:
        refuse_foreign("--overwrite", tmp_path, names, "move them out")
    message = refused.value.message
    assert "\n" not in message and refused.value.exit_code == 2
    assert all(f"'{name}'" in message for name in names[:5]) and "'file-5.txt'" not in message
    assert "and 2 more" in message
