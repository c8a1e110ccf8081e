"""Follow `DIR/progress.jsonl`, the executor's progress log, as it grows.

The run screen polls `ProgressTail.read()`; each call returns the events
written since the last one. A line still being written is kept until its
newline arrives; a line that is not a progress event is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, ValidationError


class ProgressEvent(BaseModel):
    """One line of progress.jsonl: the fields the wizard shows (the executor may write more)."""

    model_config = ConfigDict(extra="ignore")

    step: int
    max_steps: int
    loss: Optional[float] = None
    eval_loss: Optional[float] = None
    eta_s: Optional[float] = None


class ProgressTail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read(self) -> list[ProgressEvent]:
        """Events appended since the last call ([] while the file does not exist)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        events = []
        for line in lines:
            try:
                events.append(ProgressEvent.model_validate_json(line))
            except ValidationError:
                continue
        return events
