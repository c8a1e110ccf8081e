"""The run manifest: what a run's checkpoints were trained on, and what the run wrote.

Written as run-manifest.json before the first step: the data's sha256, the
plan's hash (canonical JSON of the validated plan), the split seed and the
package versions. `--resume` compares the data and the plan with it and
refuses in one line when either changed: the checkpoint's step count, data
order and schedule only mean something for the same data and plan. The data's
fingerprint leaves out the run's own folder when it lies inside a data
directory, so a run's checkpoints never count as its data.

The manifest also lists every file the run wrote, with its sha256
(`artifacts.record` adds them as they are written), the folders that are wholly the run's
(Trainer checkpoints) and the log it appends to: the proof `--overwrite`
asks for before it replaces anything (artifacts.py, advisor/ownership.py).
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

from pydantic import ValidationError

from ..errors import UserError
from ..models import Plan
from .models import ExecuteRequest, RunManifest

MANIFEST_FILE = "run-manifest.json"
#: One JSON line per logged step (callbacks.RunProgress); the wizard follows it. Appended to while training.
PROGRESS_FILE = "progress.jsonl"
#: Folders the Trainer fills (checkpoints, k-fold checkpoints): the run's as a whole.
CHECKPOINT_DIRS = ("checkpoints", "folds")
#: Where a folder of the run is built before it is renamed into place (pretokenize.py): the run's as a whole.
PARTIAL_DIR = ".partial"
#: Packages whose versions decide what a checkpoint means.
PACKAGES = ("advisor", "torch", "transformers", "peft", "accelerate", "datasets", "scikit-learn", "tokenizers")


def data_fingerprint(path: str | Path, exclude: Optional[Path] = None) -> tuple[str, int]:
    """sha256 and size in bytes of a data file, or of a directory's files (names and contents, sorted).

    `exclude` (the run's output directory) is left out when it lies inside the data directory.
    """
    digest = hashlib.sha256()
    root = Path(path)
    skipped = exclude.resolve() if exclude is not None else None
    files = [root] if root.is_file() else sorted(
        file for file in root.rglob("*")
        if file.is_file() and not (skipped is not None and file.resolve().is_relative_to(skipped))
    )
    size = 0
    for file in files:
        if root.is_dir():
            digest.update(str(file.relative_to(root)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    return digest.hexdigest(), size


def plan_fingerprint(plan: Plan) -> str:
    canonical = json.dumps(plan.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def build_manifest(
    request: ExecuteRequest, replaced_backup: str | None = None, files: Optional[dict[str, str]] = None,
) -> RunManifest:
    sha, size = data_fingerprint(request.data, exclude=Path(request.output_dir))
    versions = package_versions()
    return RunManifest(
        advisor_version=versions.get("advisor", "0"),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        data_path=str(Path(request.data).resolve()),
        data_sha256=sha,
        data_bytes=size,
        plan_sha256=plan_fingerprint(request.plan),
        split_seed=request.plan.training.data.seed if request.plan.training else 0,
        backend=request.backend,
        packages=versions,
        replaced_backup=replaced_backup,
        files=dict(files or {}),
        directories=[*CHECKPOINT_DIRS, PARTIAL_DIR],
        appending=[PROGRESS_FILE],
    )


def load_manifest(output_dir: Path) -> Optional[RunManifest]:
    """The run manifest in `output_dir`, or None when there is none that validates (then nothing there is ours)."""
    try:
        return RunManifest.model_validate_json((output_dir / MANIFEST_FILE).read_bytes())
    except (OSError, ValidationError):
        return None


def read_manifest(output_dir: Path) -> RunManifest:
    path = output_dir / MANIFEST_FILE
    if not path.is_file():
        raise UserError(f"cannot resume: '{output_dir}' holds no {MANIFEST_FILE}; it was not written by 'advisor execute'")
    try:
        return RunManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError) as error:
        reason = error.errors()[0]["msg"] if isinstance(error, ValidationError) else "not UTF-8"
        raise UserError(f"cannot resume: '{path}' is damaged ({reason})") from error


def check_resume(request: ExecuteRequest) -> RunManifest:
    """The manifest of the run to resume; UserError when its data or plan changed since."""
    manifest = read_manifest(Path(request.output_dir))
    sha, _ = data_fingerprint(request.data, exclude=Path(request.output_dir))
    if sha != manifest.data_sha256:
        raise UserError(
            f"cannot resume: the data '{request.data}' changed since the checkpoint "
            f"(sha256 {manifest.data_sha256[:12]} then, {sha[:12]} now); start a new run with another --output-dir"
        )
    plan_sha = plan_fingerprint(request.plan)
    if plan_sha != manifest.plan_sha256:
        raise UserError(
            f"cannot resume: the plan '{request.plan_path}' changed since the checkpoint "
            f"(hash {manifest.plan_sha256[:12]} then, {plan_sha[:12]} now); start a new run with another --output-dir"
        )
    return manifest
