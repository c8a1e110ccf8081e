"""The installed entry points of one group, remembered between processes until an install changes.

importlib.metadata finds entry points by reading every installed distribution's
metadata on each call: listing the `advisor` group and reading its providers'
names and versions on every start cost 25 M of the ~1,100 M instructions of a cold
`advisor plan` (84 distributions installed). What it finds changes only when a distribution is
installed, upgraded or removed, and each of those adds or removes a `.dist-info`
directory, which changes the modification time of the directory on `sys.path`
that holds it. So the answer is kept, marshalled like bytecode, under a key of
`sys.path` with each entry's modification time (a few such keys at once), and read
again only when that key changes. As with bytecode, it is written only where Python may write bytecode.

An answer read from the cache does not import importlib.metadata at all (with
advisor/cli/pydantic_plugins.py, that saves 48 M instructions more): its entry
points are `Remembered`, which load as importlib.metadata's EntryPoint does.
"""

from __future__ import annotations

import contextlib
import importlib
import marshal
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Union

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

CACHE = Path(__file__).parent / "__pycache__" / f"entry_points.{sys.implementation.cache_tag}.marshal"
#: Install states remembered at once.
KEPT = 8


class Remembered(NamedTuple):
    """An entry point read from the cache: what importlib.metadata's EntryPoint offers advisor (name, value, load)."""

    name: str
    value: str  # "module" or "module:attribute.attribute", as in entry_points.txt
    group: str

    def load(self) -> Any:
        """The object the value names, as importlib.metadata.EntryPoint.load finds it (extras are ignored)."""
        module, _, attributes = self.value.split("[", 1)[0].partition(":")
        found = importlib.import_module(module.strip())
        for attribute in filter(None, attributes.strip().split(".")):
            found = getattr(found, attribute)
        return found


class Found(NamedTuple):
    """One entry point and the distribution that declares it."""

    point: Union["EntryPoint", Remembered]
    package: str
    version: str


def installed(group: str) -> list[Found]:
    """The entry points of `group` with their distributions' names and versions (no dist: 'unknown')."""
    key = (group, _install_state())
    kept = _read()
    rows = kept.get(key)
    if rows is None:
        found = [_found(point) for point in listed(group)]
        # A few keys are kept: the console script and `python -m advisor` differ in sys.path[0].
        kept = dict(list(kept.items())[-(KEPT - 1):])
        kept[key] = [(item.point.name, item.point.value, item.package, item.version) for item in found]
        _write(kept)
        return found
    return [Found(Remembered(name, value, group), package, version) for name, value, package, version in rows]


def listed(group: str) -> tuple["EntryPoint", ...]:
    """The entry points of `group`, as importlib.metadata lists them now."""
    from importlib.metadata import entry_points

    return tuple(entry_points(group=group))


def _found(point: "EntryPoint") -> Found:
    if point.dist is None:
        return Found(point, "unknown", "unknown")
    metadata = point.dist.metadata  # parsed once here: .name and .version would each parse it again
    return Found(point, metadata["Name"], metadata["Version"])


def _install_state() -> tuple[tuple[str, int], ...]:
    """Each directory on sys.path with its modification time: what an install or removal changes."""
    state = []
    for entry in sys.path:
        with contextlib.suppress(OSError):
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
    return tuple(state)


def _read() -> dict[tuple, list[tuple[str, str, str, str]]]:
    with contextlib.suppress(OSError, EOFError, ValueError, TypeError):
        kept = marshal.loads(CACHE.read_bytes())
        if isinstance(kept, dict):
            return kept
    return {}


def _write(kept: dict[tuple, list[tuple[str, str, str, str]]]) -> None:
    if sys.dont_write_bytecode:
        return
    temporary = CACHE.with_name(f"{CACHE.name}.{os.getpid()}.tmp")
    try:
        CACHE.parent.mkdir(exist_ok=True)
        temporary.write_bytes(marshal.dumps(kept))
        os.replace(temporary, CACHE)  # whole or not at all, should two processes write at once
    except OSError:  # a read-only install: list the entry points each time
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
