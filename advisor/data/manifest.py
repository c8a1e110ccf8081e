"""`write_split`: a SplitPlan -> DIR/train.jsonl, validation.jsonl, test.jsonl or DIR/fold-N/..., and DIR/manifest.json.

`advisor split` calls it; `advisor execute` copies the manifest next to the
run. Each output line is one ORIGINAL row (all its columns, as read) as JSON
with sorted keys, in the order of the input, so the same input, arguments
and seed give byte-identical files. An existing DIR is refused unless
overwrite; with overwrite only the files a split writes are replaced, and a
DIR that would replace the input file itself is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError
from .load import LoadedData
from .split import SplitPlan

MANIFEST = "manifest.json"
SPLIT_NAMES = ("train", "validation", "test")


class ManifestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitFile(ManifestModel):
    file: str = Field(description="path relative to the output directory")
    records: int
    sha256: str
    labels: dict[str, int] = Field(default_factory=dict, description="records per label (classification or the stratify column)")


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
    splits: dict[str, SplitFile] = Field(default_factory=dict)
    folds: list[FoldFiles] = Field(default_factory=list)
    dropped_lines: list[int] = Field(default_factory=list, description="lines of invalid records left out")


def write_split(
    loaded: LoadedData,
    plan: SplitPlan,
    out_dir: str | Path,
    overwrite: bool = False,
    arguments: Optional[dict[str, Any]] = None,
) -> Manifest:
    out = Path(out_dir)
    outputs = _output_paths(plan)
    _refuse_unsafe(out, outputs, loaded, overwrite)
    if out.exists():
        _remove_previous_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = _label_values(loaded, plan)
    written = {relative: _write_rows(out, relative, [loaded.originals[i] for i in indices], labels, indices)
               for relative, indices in outputs.items()}
    manifest = Manifest(
        source=[SourceFile(path=file, sha256=_sha256_of_file(Path(file))) for file in loaded.files],
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


def _output_paths(plan: SplitPlan) -> dict[str, list[int]]:
    """Relative output file -> the record positions it holds."""
    outputs = {f"{name}.jsonl": indices for name, indices in plan.splits.items()}
    for n, fold in enumerate(plan.folds):
        outputs[f"fold-{n}/train.jsonl"] = fold.train
        outputs[f"fold-{n}/validation.jsonl"] = fold.validation
    return outputs


def _refuse_unsafe(out: Path, outputs: dict[str, list[int]], loaded: LoadedData, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' is a file; name a directory")
    if out.exists() and not overwrite:
        raise UserError(f"'{out}' already exists; pass --overwrite to replace it")
    inputs = {Path(file).resolve() for file in loaded.files}
    for relative in [*outputs, MANIFEST]:
        if (out / relative).resolve() in inputs:
            raise UserError(f"'{out / relative}' is the input file; choose another --out directory")


def _remove_previous_outputs(out: Path) -> None:
    """--overwrite: remove what an earlier split wrote there (and nothing else)."""
    for name in (*(f"{split}.jsonl" for split in SPLIT_NAMES), MANIFEST):
        (out / name).unlink(missing_ok=True)
    for fold in out.glob("fold-*"):
        if fold.is_dir() and fold.name[5:].isdigit():
            for name in ("train.jsonl", "validation.jsonl"):
                (fold / name).unlink(missing_ok=True)
            if not any(fold.iterdir()):
                fold.rmdir()


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


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
