"""The data tokenised once, before a multi-process launch, and read back by every process.

Without it each process `accelerate launch` starts tokenises the whole data
set itself, at the same time, before its first collective: on a large set the
slowest one holds the others past NCCL's timeout (users report it). So
`python train.py --prepare-only` (launch.sh runs it once before `accelerate
launch`; `advisor execute --backend accelerate` does the same in its own
process) encodes the records exactly as the local backend does (`prepare`:
tasks.encode_records) and saves them with `datasets`' `save_to_disk` into
RUN/tokenized/: one row per record that kept something to learn, with its
record number (`record`), so the plan's split and folds select from it by
record as they select from the encoding in memory. TOKENIZED_MANIFEST there
holds what the encoding came from (the plan's and the data's sha256, the
package versions that decide it) and what it dropped; a process refuses a
folder made for another plan, data or version, naming what changed.

The folder is built in RUN/.partial/ (the run's as a whole) and renamed when complete, and
each file in it is recorded in run-manifest.json (artifacts.record): a later
--overwrite or --prepare-only replaces it as the run's own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

from ..errors import UserError
from ..ownership import refuse_foreign
from . import artifacts
from .manifest import PARTIAL_DIR, data_fingerprint, load_manifest, package_versions, plan_fingerprint
from .models import ExecuteRequest
from .tasks import Encoded

#: Inside the tokenized folder: what it was made from.
TOKENIZED_MANIFEST = "advisor-tokenized.json"
#: The column that numbers each row's record in the data.
RECORD = "record"
#: Packages whose versions decide the token ids (the encoding code is advisor's).
ENCODING_PACKAGES = ("advisor", "transformers", "tokenizers", "trl")


class TokenizedManifest(BaseModel):
    """TOKENIZED_MANIFEST: the encoding's source and what it dropped (Encoded without the rows)."""

    model_config = ConfigDict(extra="forbid")

    plan_sha256: str
    data_sha256: str
    packages: dict[str, str]
    records: int
    truncated: int
    refused: dict[int, str]


def expected(request: ExecuteRequest) -> dict[str, Any]:
    """What a current tokenized folder was made from, for this request."""
    sha, _ = data_fingerprint(request.data, exclude=Path(request.output_dir))
    versions = package_versions()
    return {"plan_sha256": plan_fingerprint(request.plan), "data_sha256": sha,
            "packages": {name: versions[name] for name in ENCODING_PACKAGES if name in versions}}


def staleness(folder: Path, request: ExecuteRequest) -> Optional[str]:
    """Why the tokenized `folder` does not fit `request` (what changed), or None when it does."""
    try:
        made = TokenizedManifest.model_validate_json((folder / TOKENIZED_MANIFEST).read_bytes())
    except (OSError, ValueError):
        return f"its {TOKENIZED_MANIFEST} is missing or damaged"
    now = expected(request)
    if made.plan_sha256 != now["plan_sha256"]:
        return (f"the plan '{request.plan_path}' changed since "
                f"(hash {made.plan_sha256[:12]} then, {now['plan_sha256'][:12]} now)")
    if made.data_sha256 != now["data_sha256"]:
        return (f"the data '{request.data}' changed since "
                f"(sha256 {made.data_sha256[:12]} then, {now['data_sha256'][:12]} now)")
    changed = [f"{name} {made.packages.get(name, 'absent')} then, {version} now"
               for name, version in now["packages"].items() if made.packages.get(name) != version]
    if changed:
        return "the packages that tokenise changed since (" + "; ".join(changed) + ")"
    return None


def load(folder: Path, request: ExecuteRequest) -> Encoded:
    """The encoding saved in `folder`; UserError naming what changed when it was made for another run."""
    from datasets import disable_progress_bars, load_from_disk

    disable_progress_bars()  # one per shard: noise in front of the run's own progress
    stale = staleness(folder, request)
    if stale:
        raise UserError(f"the tokenized data '{folder}' does not fit this run: {stale}; "
                        "run `python train.py --prepare-only` again (launch.sh does)")
    made = TokenizedManifest.model_validate_json((folder / TOKENIZED_MANIFEST).read_bytes())
    features: list[Any] = [None] * made.records
    for row in load_from_disk(str(folder)):
        features[row.pop(RECORD)] = row
    return Encoded(features=features, truncated=made.truncated, refused=made.refused)


def save(encoded: Encoded, request: ExecuteRequest, folder: Path) -> None:
    """Write `encoded` to `folder`: built under a temporary name, renamed when complete, recorded as the run's."""
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    run_dir = folder.parent
    _check_replaceable(folder, run_dir)
    staged = run_dir / PARTIAL_DIR / folder.name
    shutil.rmtree(staged, ignore_errors=True)
    staged.parent.mkdir(exist_ok=True)
    rows = [{RECORD: index, **feature} for index, feature in enumerate(encoded.features) if feature is not None]
    Dataset.from_list(rows).save_to_disk(str(staged))
    made = TokenizedManifest(**expected(request), records=len(encoded.features), truncated=encoded.truncated,
                             refused=encoded.refused)
    artifacts.write_json(staged / TOKENIZED_MANIFEST, made)
    replaced = run_dir / PARTIAL_DIR / f"{folder.name}.replaced"
    if folder.exists():  # moved aside, then replaced: never half a folder in place
        shutil.rmtree(replaced, ignore_errors=True)
        os.replace(folder, replaced)
    os.replace(staged, folder)
    shutil.rmtree(replaced, ignore_errors=True)
    with contextlib.suppress(OSError):
        staged.parent.rmdir()
    if load_manifest(run_dir) is not None:
        artifacts.record(run_dir, sorted(path for path in folder.rglob("*") if path.is_file()))


def _check_replaceable(folder: Path, run_dir: Path) -> None:
    """Refuse to replace a tokenized folder with a file run-manifest.json does not prove advisor wrote."""
    if not folder.exists():
        return
    inside = f"{folder.name}/"
    foreign = [name for name in artifacts.foreign_in(run_dir, load_manifest(run_dir)) if name.startswith(inside)]
    if foreign or not folder.is_dir():
        refuse_foreign("--prepare-only", run_dir, foreign or [folder.name],
                       "move them out or choose another --output-dir")


def owned_files(run_dir: Path, folder_name: str) -> tuple[str, ...]:
    """The files of the tokenized folder in `run_dir`, relative: what a new run there writes around."""
    folder = run_dir / folder_name
    if not folder.is_dir():
        return ()
    return tuple(path.relative_to(run_dir).as_posix() for path in sorted(folder.rglob("*")) if path.is_file())


def prepare_once(request: ExecuteRequest, folder: Path, prepared: Any = None) -> str:
    """--prepare-only: tokenise into `folder` unless a current one is there; one line saying which happened.

    `prepared` is a run already prepared in this process (its encoding is saved as it is); else `prepare` runs.
    """
    from .prepared import prepare

    if folder.is_dir() and staleness(folder, request) is None:
        return f"tokenized data is current: {folder}"
    prepared = prepared or prepare(request)
    save(prepared.encoded, request, folder)
    kept = sum(feature is not None for feature in prepared.encoded.features)
    return f"tokenized {kept} of {len(prepared.encoded.features)} records once for every process: {folder}"
