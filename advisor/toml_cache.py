"""Read TOML files through a parse cache kept beside them, the way Python keeps bytecode.

tomllib is pure Python: parsing the knowledge base (12 files, 60 kB) took about 30 ms of
every cold `advisor plan`. The cache (`__pycache__/toml.<python>.marshal` under the
directory read) holds each file's bytes and its parsed value in marshal format, the format
of .pyc files: nothing to import, and it loads in well under a millisecond. A file whose
bytes differ from the cached bytes is parsed again, so an edit is never missed. Like
bytecode, the cache is written only where Python may write bytecode (not under -B or
PYTHONDONTWRITEBYTECODE) and the directory is writable; otherwise files are parsed each time.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
from pathlib import Path
from typing import Any

#: directory -> {file name relative to it: (file bytes, marshalled parsed value)}
_entries: dict[Path, dict[str, tuple[bytes, bytes]]] = {}


def cache_path(directory: Path) -> Path:
    return directory / "__pycache__" / f"toml.{sys.implementation.cache_tag}.marshal"


def load(directory: Path, name: str) -> dict[str, Any]:
    """The parsed TOML file `directory`/`name`; tomllib's errors (ValueErrors) pass through."""
    raw = (directory / name).read_bytes()
    entries = _cached(directory)
    hit = entries.get(name)
    if hit is not None and hit[0] == raw:
        return marshal.loads(hit[1])
    import tomllib  # only on a miss: its import is a few ms of its own

    data = tomllib.loads(raw.decode("utf-8"))
    try:
        entries[name] = (raw, marshal.dumps(data))
    except ValueError:  # a value marshal cannot hold (a TOML date): parsed every time
        return data
    _write(directory, entries)
    return data


def _cached(directory: Path) -> dict[str, tuple[bytes, bytes]]:
    """The cache of `directory`, read once per process; empty when missing or unreadable."""
    if directory not in _entries:
        try:
            stored = marshal.loads(cache_path(directory).read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            stored = {}
        _entries[directory] = {
            name: entry for name, entry in (stored.items() if isinstance(stored, dict) else ())
            if isinstance(entry, tuple) and len(entry) == 2 and all(isinstance(part, bytes) for part in entry)
        }
    return _entries[directory]


def _write(directory: Path, entries: dict[str, tuple[bytes, bytes]]) -> None:
    if sys.dont_write_bytecode:
        return
    path = cache_path(directory)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        temporary.write_bytes(marshal.dumps(entries))
        os.replace(temporary, path)  # whole or not at all, should two processes write at once
    except OSError:  # a read-only install: parse each time, as Python does without bytecode
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
