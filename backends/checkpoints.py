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

A checkpoint resumes on another number of processes. Under FSDP each process
writes its shard in torch.distributed.checkpoint (DCP) format; an FSDP run on
any number of processes loads it through accelerate, and DCP reshards on load.
A run without FSDP (one process: plain `advisor execute --resume`) cannot read
it (transformers refuses), so `whole_copy` reads every shard back whole into
a checkpoint in the unsharded layout. The Trainer's per-process RNG files
(rng_state_N.pth) tell how many processes wrote a checkpoint
(`writer_processes`); a missing one for this process count is the Trainer's
"reproducibility is not guaranteed", not an error. What is not carried over:
a whole checkpoint (one process or DDP) into an FSDP run, which reads only
DCP shards.
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


#: Where a sharded checkpoint is rewritten whole for a run that does not shard (inside the Trainer's folder).
WHOLE = ".whole"
#: The folders transformers' Trainer (through accelerate) writes a sharded FSDP checkpoint into: DCP format.
_SHARDED_MODEL, _SHARDED_OPTIMIZER = "pytorch_model_fsdp_0", "optimizer_0"
_RNG_STATE = re.compile(r"^rng_state(?:_(\d+))?\.pth$")


def writer_processes(checkpoint: Path) -> int:
    """How many processes wrote `checkpoint`: the Trainer saves one RNG state per process (rng_state_N.pth)."""
    return max(1, sum(1 for path in checkpoint.iterdir() if _RNG_STATE.match(path.name)))


def is_sharded(checkpoint: Path) -> bool:
    """An FSDP checkpoint in torch.distributed.checkpoint (DCP) format: each process wrote its shard."""
    return (checkpoint / _SHARDED_MODEL / ".metadata").is_file()


def world_size_line(checkpoint: Path, processes: int) -> Optional[str]:
    """The one line a resume on another number of processes prints; None on the same number."""
    wrote = writer_processes(checkpoint)
    if wrote == processes:
        return None
    return (f"resuming a {wrote}-process checkpoint on {processes} process{'' if processes == 1 else 'es'}: "
            "the model, optimizer and schedule carry over; the data order is the new one's, from the same step")


def whole_copy(checkpoint: Path, run_dir: Path, model: Any) -> Path:
    """A copy of the sharded `checkpoint` a run without FSDP resumes from (transformers 5.24 refuses a sharded one
    there: "only supported when using PyTorch FSDP"); written under STAGING, then renamed to run_dir/.whole/.

    torch.distributed.checkpoint reads every shard back whole without a process group (`dcp_to_torch_save`):
    the model as the Trainer saves one (a peft adapter: adapter_model.safetensors with its config; else
    pytorch_model.bin), the optimizer as optimizer.pt. The small files (trainer_state.json, scheduler.pt, the
    RNG states) are copied.
    """
    import torch
    from safetensors.torch import save_file

    staged = Path(staging_dir(str(run_dir))) / WHOLE / checkpoint.name
    final = run_dir / WHOLE / checkpoint.name
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for path in checkpoint.iterdir():
        if path.is_file():
            shutil.copy2(path, staged / path.name)
    weights = _read_dcp(checkpoint / _SHARDED_MODEL, staged)["model"]
    if hasattr(model, "peft_config"):
        # Under FSDP the Trainer saves a peft model's adapter alone, in peft's own key format.
        save_file({name: tensor.contiguous() for name, tensor in weights.items()},
                  str(staged / "adapter_model.safetensors"))
        model.peft_config[model.active_adapter].save_pretrained(str(staged))
    else:
        torch.save(weights, staged / "pytorch_model.bin")  # tied embeddings: safetensors refuses shared tensors
    torch.save(_by_position(_read_dcp(checkpoint / _SHARDED_OPTIMIZER, staged)["optimizer"]), staged / "optimizer.pt")
    shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(exist_ok=True)
    os.replace(staged, final)
    return final


def _read_dcp(folder: Path, scratch: Path) -> dict[str, Any]:
    """A DCP checkpoint folder read back whole in this one process (torch's own converter, through a file)."""
    import torch
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    converted = scratch / f".{folder.name}.pt"
    dcp_to_torch_save(str(folder), str(converted))
    try:
        return torch.load(converted, weights_only=True)
    finally:
        converted.unlink()


def _by_position(optimizer_state: dict[str, Any]) -> dict[str, Any]:
    """DCP's optimizer state (keyed by parameter name) in `Optimizer.load_state_dict`'s form (keyed by position).

    A twin of torch's set_optimizer_state_dict, which needs the live optimizer; the Trainer builds that inside
    train() and then reads optimizer.pt with Optimizer.load_state_dict. Positions count the parameters of every
    group in order, as Optimizer.state_dict numbers them; the groups are the same ones (param_groups.py) with or
    without FSDP, whose parameter names are the unwrapped model's.
    """
    position: dict[str, int] = {}
    groups = []
    for group in optimizer_state["param_groups"]:
        ids = [position.setdefault(name, len(position)) for name in group["params"]]
        groups.append({**group, "params": ids})
    state = {position[name]: values for name, values in optimizer_state["state"].items() if name in position}
    return {"state": state, "param_groups": groups}
