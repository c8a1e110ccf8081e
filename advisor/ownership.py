"""Proof that a folder is advisor's own before `--overwrite` replaces anything in it.

advisor deletes or replaces only what it wrote itself. What it wrote is what
the manifest it left in the folder lists, each file with the sha256 it had
when written (`advisor split`: DIR/manifest.json; `advisor execute`:
DIR/run-manifest.json). A file the manifest does not list, a listed file whose
bytes changed since, and any symbolic link are someone else's: `foreign_files`
names them, and the caller refuses in one line (`refuse_foreign`) instead of
touching the folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Mapping

from .errors import UserError

#: The temporary names advisor writes a file under before renaming it (an interrupted write leaves one).
TEMPORARY_SUFFIXES = (".tmp", ".partial")
#: How many foreign files the refusal names before "and N more".
NAMED = 5


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_under(root: Path) -> list[str]:
    """Every file and link under `root`, relative with '/', sorted; links are listed, never followed."""
    found = []
    for folder, directories, files in os.walk(root):
        here = Path(folder)
        found += [(here / name).relative_to(root).as_posix() for name in files]
        found += [(here / name).relative_to(root).as_posix() for name in directories if (here / name).is_symlink()]
    return sorted(found)


def foreign_files(
    root: Path, files: Mapping[str, str], directories: Iterable[str] = (), by_name: Iterable[str] = (),
) -> list[str]:
    """Files under `root` the manifest does not prove advisor's; relative paths, sorted.

    `files`: relative path -> the sha256 advisor wrote; `directories`: folders
    whose whole content is advisor's (Trainer checkpoints); `by_name`: files
    advisor owns by name alone (the manifest itself, a log it appends to while
    running). A temporary twin of an owned file ('.NAME.tmp') is advisor's too.
    """
    owned_directories = tuple(f"{directory.rstrip('/')}/" for directory in directories)
    named = set(by_name)
    foreign = []
    for relative in files_under(root):
        path = root / relative
        if path.is_symlink():
            foreign.append(relative)
        elif relative in named or relative.startswith(owned_directories):
            continue
        elif _temporary_twin(relative) in named or _temporary_twin(relative) in files:
            continue
        elif files.get(relative) != sha256_of(path):
            foreign.append(relative)
    return foreign


def _temporary_twin(relative: str) -> str:
    """'data/.train.jsonl.partial' -> 'data/train.jsonl'; '' for a name that is no temporary name."""
    folder, _, name = relative.rpartition("/")
    for suffix in TEMPORARY_SUFFIXES:
        if name.startswith(".") and name.endswith(suffix) and len(name) > len(suffix) + 1:
            original = name[1:-len(suffix)]
            return f"{folder}/{original}" if folder else original
    return ""


def refuse_foreign(what: str, folder: Path, foreign: list[str], remedy: str) -> None:
    """One line naming the files advisor did not write, so nothing in `folder` is replaced."""
    named = ", ".join(f"'{name}'" for name in foreign[:NAMED])
    more = f" and {len(foreign) - NAMED} more" if len(foreign) > NAMED else ""
    raise UserError(
        f"{what} will not replace '{folder}': it holds files advisor did not write ({named}{more}); {remedy}"
    )
