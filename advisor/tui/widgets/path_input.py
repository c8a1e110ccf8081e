"""Completion of file-system paths in an Input: the rest of the name appears greyed; → (or End) takes it.

Used for the data file (step 2, the Execute dialog), the local model folder
(step 3) and the output directory. It reads one directory per keystroke, so
it stays instant; hidden entries are offered only once a dot is typed.
"""

from __future__ import annotations

import os
from os.path import commonprefix
from pathlib import Path
from typing import Optional

from textual.suggester import Suggester


class PathSuggester(Suggester):
    """Suggests the completion of the last path component; `directories_only` for folder questions."""

    def __init__(self, *, directories_only: bool = False) -> None:
        super().__init__(use_cache=False, case_sensitive=True)  # the file system changes under us
        self.directories_only = directories_only

    async def get_suggestion(self, value: str) -> Optional[str]:
        return complete_path(value, self.directories_only)


def complete_path(value: str, directories_only: bool = False) -> Optional[str]:
    """`value` completed as far as the entries of its directory agree; a lone directory gets its "/"."""
    if not value.strip():
        return None
    typed = Path(value).expanduser()
    folder, stem = (typed, "") if value.endswith(os.sep) else (typed.parent, typed.name)
    try:
        entries = [entry for entry in os.scandir(folder)
                   if entry.name.startswith(stem) and (stem.startswith(".") or not entry.name.startswith("."))
                   and (entry.is_dir() or not directories_only)]
    except OSError:
        return None
    if not entries:
        return None
    names = [entry.name for entry in entries]
    completed = commonprefix(names)
    if len(entries) == 1 and entries[0].is_dir():
        completed += os.sep
    return value + completed[len(stem):] if len(completed) > len(stem) else None
