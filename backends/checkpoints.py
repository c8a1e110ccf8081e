"""Crash-safe Trainer checkpoints: written under a temporary name, renamed when complete.

transformers 5.24's `Trainer._save_checkpoint` writes checkpoint-N in place
(model, optimizer, scheduler, RNG, trainer_state.json last), then deletes the
older checkpoints. A kill in between left a partial checkpoint-N that
`get_last_checkpoint` picked, and every `--resume` crashed on it. PlanTrainer
therefore points that save at STAGING/checkpoint-N (`staging_dir`), and
`publish` renames it to checkpoint-N once the save returned, and only then
lets the Trainer's rotation delete the older ones: at every moment the folder
holds a complete checkpoint or none.

`StagedCheckpoints` is that override, a mixin shared by PlanTrainer and the
preference methods' TRL trainers (preference.py), so every run's checkpoints
are staged.

`newest_complete` picks what `--resume` continues from: the newest
checkpoint-N whose trainer_state.json reads back and is at step N (ones made
before this scheme, or damaged since, are skipped and named), and reports the
interrupted saves left in STAGING, which `clear_staging` removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

#: Where a checkpoint is written before it is complete, inside the Trainer's output folder.
STAGING = ".incomplete"
TRAINER_STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def staging_dir(run_dir: str) -> str:
    return os.path.join(run_dir, STAGING)


def publish(trainer: Any, run_dir: str) -> None:
    """After the Trainer saved STAGING/checkpoint-N: rename it to checkpoint-N, then rotate the older ones."""
    from transformers.trainer_utils import rotate_checkpoints

    name = f"checkpoint-{trainer.state.global_step}"
    staged, final = os.path.join(staging_dir(run_dir), name), os.path.join(run_dir, name)
    state = trainer.state
    if state.best_model_checkpoint == staged:  # this step is the best so far: name it where it will be
        state.best_model_checkpoint = final
        if trainer.args.should_save:
            state.save_to_json(os.path.join(staged, TRAINER_STATE))
    trainer.accelerator.wait_for_everyone()  # every process has written its part of the checkpoint
    if not trainer.args.should_save:
        return
    if os.path.isdir(final):  # an earlier attempt at this step (before an out-of-memory retry)
        shutil.rmtree(final)
    os.replace(staged, final)
    with contextlib.suppress(OSError):  # empty now, unless another process still writes there
        os.rmdir(staging_dir(run_dir))
    rotate_checkpoints(run_dir, trainer.args.save_total_limit, state.best_model_checkpoint, use_mtime=True)


class StagedCheckpoints:
    """Mixin for a transformers Trainer (first in the bases): `_save_checkpoint` writes into the staging folder,
    then `publish` renames the checkpoint and rotates the older ones."""

    _saving_checkpoint = False

    def _get_output_dir(self, trial: Any) -> str:
        run_dir = super()._get_output_dir(trial)  # type: ignore[misc]
        return staging_dir(run_dir) if self._saving_checkpoint else run_dir

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        self._saving_checkpoint = True
        try:
            super()._save_checkpoint(model, trial)  # type: ignore[misc]
        finally:
            self._saving_checkpoint = False
        publish(self, self._get_output_dir(trial))


def newest_complete(folder: Path) -> tuple[Optional[Path], list[str]]:
    """The newest complete checkpoint in `folder` (None without one), and one line per newer one skipped."""
    if not folder.is_dir():
        return None, []
    skipped = [f"'{path}': its save was interrupted" for path in sorted((folder / STAGING).glob("checkpoint-*"))]
    found = sorted(
        ((int(match.group(1)), path) for path in folder.iterdir()
         if (match := _CHECKPOINT.match(path.name)) and path.is_dir()),
        reverse=True,
    )
    for step, path in found:
        problem = _incomplete(path, step)
        if problem is None:
            return path, skipped
        skipped.append(f"'{path}': {problem}")
    return None, skipped


def _incomplete(checkpoint: Path, step: int) -> Optional[str]:
    """Why `checkpoint` cannot be resumed from, or None. trainer_state.json is the last file the Trainer writes."""
    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {TRAINER_STATE} (the save did not finish)"
    except (OSError, ValueError):
        return f"{TRAINER_STATE} is damaged"
    if not isinstance(state, dict) or state.get("global_step") != step:
        return f"{TRAINER_STATE} is not at step {step}"
    return None


def clear_staging(folder: Path) -> None:
    """Remove the saves a killed run left unfinished (the run's own folder)."""
    shutil.rmtree(folder / STAGING, ignore_errors=True)
