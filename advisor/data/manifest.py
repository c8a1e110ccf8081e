"""`write_split`: a SplitPlan -> DIR/train.jsonl, validation.jsonl, test.jsonl or DIR/fold-N/..., and DIR/manifest.json.

`advisor split` calls it; `advisor execute` copies the manifest next to the
run. Each output line is one ORIGINAL row (all its columns, as read) as JSON
with sorted keys, in the order of the input, so the same input, arguments
and seed give byte-identical files. An existing DIR is refused unless
overwrite, and overwrite replaces only an earlier split: a DIR holding any file
its manifest.json does not list with that sha256 (advisor/ownership.py) is
refused naming those files, and so is a DIR holding the input itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UserError
from ..ownership import files_under, foreign_files, refuse_foreign, sha256_of
from .load import LoadedData
from .split import SplitPlan

MANIFEST = "manifest.json"


class ManifestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitFile(ManifestModel):
    file: str = Field(description="path relative to the output directory")
    records: int
    sha256: str
    labels: dict[str, int] = Field({}, description="records per label (classification or the stratify column)")


class FoldFiles(ManifestModel):
    fold: int
    train: SplitFile
    validation: SplitFile


class SourceFile(ManifestModel):
    path: str
    sha256: str


class Manifest(ManifestModel):
    """DIR/manifest.json: where the data came from, how it was split, and what each file holds."""

    schema_version: int = 1
    source: list[SourceFile]
    format: str
    records: int = Field(description="valid records split (invalid ones are never written)")
    columns: list[str]
    mapping: dict[str, str]
    arguments: dict[str, Any] = Field(description="the exact arguments of the split")
    strategy: str
    seed: int
    stratify_by: Optional[str]
    group_by: Optional[str]
    splits: dict[str, SplitFile] = {}
    folds: list[FoldFiles] = []
    dropped_lines: list[int] = Field([], description="lines of invalid records left out")


def write_split(
    loaded: LoadedData,
    plan: SplitPlan,
    out_dir: str | Path,
    overwrite: bool = False,
    arguments: Optional[dict[str, Any]] = None,
) -> Manifest:
    out = Path(out_dir)
    outputs = _output_paths(plan)
    previous = _check_out_dir(out, loaded, overwrite)
    if previous is not None:
        _remove_split(out, previous)
    out.mkdir(parents=True, exist_ok=True)
    labels = _label_values(loaded, plan)
    written = {relative: _write_rows(out, relative, [loaded.originals[i] for i in indices], labels, indices)
               for relative, indices in outputs.items()}
    manifest = Manifest(
        source=[SourceFile(path=file, sha256=sha256_of(Path(file))) for file in loaded.files],
        format=loaded.format,
        records=len(loaded.records),
        columns=loaded.columns,
        mapping=loaded.mapping,
        arguments=arguments or {},
        strategy=plan.strategy,
        seed=plan.seed,
        stratify_by=plan.stratify_by,
        group_by=plan.group_by,
        splits={name: written[f"{name}.jsonl"] for name in plan.splits},
        folds=[
            FoldFiles(fold=n, train=written[f"fold-{n}/train.jsonl"], validation=written[f"fold-{n}/validation.jsonl"])
            for n in range(len(plan.folds))
        ],
        dropped_lines=[error.line for error in loaded.errors],
    )
    _write_bytes(out / MANIFEST, (json.dumps(manifest.model_dump(), indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return manifest


def split_files(manifest: Manifest) -> dict[str, str]:
    """Every data file a split wrote: relative path -> sha256."""
    parts = [*manifest.splits.values(), *(part for fold in manifest.folds for part in (fold.train, fold.validation))]
    return {part.file: part.sha256 for part in parts}


def _output_paths(plan: SplitPlan) -> dict[str, list[int]]:
    """Relative output file -> the record positions it holds."""
    outputs = {f"{name}.jsonl": indices for name, indices in plan.splits.items()}
    for n, fold in enumerate(plan.folds):
        outputs[f"fold-{n}/train.jsonl"] = fold.train
        outputs[f"fold-{n}/validation.jsonl"] = fold.validation
    return outputs


def _check_out_dir(out: Path, loaded: LoadedData, overwrite: bool) -> Optional[Manifest]:
    """Refuse an --out this split may not write, changing nothing; the earlier split --overwrite replaces."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' is a file; name a directory")
    if not out.exists():
        return None
    if not overwrite:
        raise UserError(f"'{out}' already exists; pass --overwrite to replace it")
    root = out.resolve()
    for file in loaded.files:
        if Path(file).resolve().is_relative_to(root):
            raise UserError(f"'{file}' is the input file and lies in --out '{out}', which --overwrite would "
                            "replace; choose another --out directory")
    previous = _read_manifest(out)
    if previous is None:
        foreign = files_under(out)
    else:
        foreign = foreign_files(out, split_files(previous), by_name=[MANIFEST])
    if foreign:
        refuse_foreign("--overwrite", out, foreign, "move them out or choose another --out directory")
    return previous


def _read_manifest(out: Path) -> Optional[Manifest]:
    """The manifest an earlier split left in `out`, or None when there is none that validates."""
    try:
        return Manifest.model_validate_json((out / MANIFEST).read_bytes())
    except (OSError, ValidationError):
        return None


def _remove_split(out: Path, previous: Manifest) -> None:
    """--overwrite: remove what the earlier split wrote (proved by its manifest), its manifest last."""
    for relative in split_files(previous):
        (out / relative).unlink(missing_ok=True)
        folder = (out / relative).parent
        if folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    (out / MANIFEST).unlink(missing_ok=True)


def _label_values(loaded: LoadedData, plan: SplitPlan) -> Optional[list[str]]:
    if loaded.format == "classification":
        return [record["label"] for record in loaded.records]
    if plan.stratify_by:
        return [str(row.get(plan.stratify_by)) for row in loaded.rows()]
    return None


def _write_rows(
    out: Path, relative: str, rows: list[dict[str, Any]], labels: Optional[list[str]], indices: list[int]
) -> SplitFile:
    data = "".join(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str) + "\n" for row in rows).encode("utf-8")
    _write_bytes(out / relative, data)
    counts = Counter(labels[i] for i in indices) if labels is not None else Counter()
    return SplitFile(
        file=relative,
        records=len(rows),
        sha256=hashlib.sha256(data).hexdigest(),
        labels=dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
    )


def _write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name and rename, so a crash never leaves half a file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)
