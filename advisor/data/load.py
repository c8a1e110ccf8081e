"""`load_records`: a data file or directory -> normalised records, their lines, and the bad ones.

The planner, the backends, `advisor validate` and `advisor split` all read
data through here, so they agree on what a record is. A directory loads its
`train.*` file, or every supported file in it when there is none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError, did_you_mean
from .formats import INSTANCES, RowProblem, candidates, detect_mapping
from .readers import SUPPORTED, read_table
from .records import normalise_record
from .report import DataFormat, RecordError


class LoadedData(BaseModel):
    """Valid records, normalised per format, with each one's line and original row; bad records as errors.

    records: classification {"text", "label"} (label as a string), alpaca
    {"instruction", "input", "output"}, chat {"messages": [{"role", "content"}]},
    text {"text"}. originals[i] is the row records[i] came from, all columns
    as read (for nested alpaca instances: the row with only that instance).
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    files: list[str]
    format: DataFormat
    records: list[dict[str, Any]]
    lines: list[int] = Field(description="1-based line of each record (CSV: file line, header counted; JSON array: index + 1)")
    columns: list[str] = Field(description="the original column names")
    mapping: dict[str, str] = Field(description="normalised field -> original column")
    originals: list[dict[str, Any]]
    errors: list[RecordError] = Field([], description="every bad record, in file order")
    total: int = Field(description="records read, valid or not")

    def rows(self) -> list[dict[str, Any]]:
        """Each record's original row with the normalised fields laid over it (what split columns name)."""
        return [{**original, **record} for original, record in zip(self.originals, self.records)]

    def require_column(self, column: str) -> None:
        """UserError unless every record has `column` (an original column or a normalised field)."""
        known = list(dict.fromkeys([*self.columns, *(self.records[0] if self.records else {})]))
        if column not in known:
            raise UserError(f"unknown column '{column}'{did_you_mean(column, known)}; columns: {', '.join(known)}")
        for row, line in zip(self.rows(), self.lines):
            if row.get(column) is None:
                raise UserError(f"the record at line {line} has no value in column '{column}'")


def load_records(
    path: str | Path,
    format: str = "auto",
    text_column: Optional[str] = None,
    label_column: Optional[str] = None,
) -> LoadedData:
    """Read and normalise a data file or directory; UserError (exit 2) when it cannot be read at all."""
    files = data_files(Path(path))
    tables = [read_table(file) for file in files]
    columns = list(dict.fromkeys(column for table in tables for column in table.columns))
    mapping = detect_mapping(columns, format, text_column, label_column, source=f"'{path}'")
    several = len(tables) > 1
    records, lines, originals, errors = [], [], [], []
    for table in tables:
        file = table.path.name if several else None
        table_errors = [problem.model_copy(update={"file": file}) for problem in table.problems]
        for row, line in zip(table.rows, table.lines):
            try:
                pairs = candidates(row, mapping)
            except RowProblem as problem:
                table_errors.append(RecordError(line=line, message=str(problem), file=file))
                continue
            for index, (candidate, names) in enumerate(pairs):
                try:
                    records.append(normalise_record(mapping.format, candidate, names))
                except ValueError as problem:
                    table_errors.append(RecordError(line=line, message=str(problem), file=file))
                    continue
                lines.append(line)
                originals.append(_original(row, mapping.fields, index))
        errors.extend(sorted(table_errors, key=lambda error: error.line))
    total = len(records) + len(errors)
    if total == 0:
        raise UserError(f"cannot read '{path}': it holds no records")
    return LoadedData.model_construct(
        path=str(path), files=[str(file) for file in files], format=mapping.format, records=records, lines=lines,
        columns=columns, mapping=dict(mapping.fields), originals=originals, errors=errors, total=total,
    )


def data_files(path: Path) -> list[Path]:
    """The file itself, or a directory's train.* file, or all its supported files."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        reason = "not a regular file" if path.exists() else "no such file or directory"
        raise UserError(f"cannot read '{path}': {reason}")
    files = sorted(file for file in path.iterdir() if file.is_file() and file.suffix.lower() in SUPPORTED)
    train = [file for file in files if file.stem.lower() == "train"]
    if not files:
        raise UserError(f"cannot read '{path}': the directory holds no {', '.join(SUPPORTED)} file")
    return train[:1] or files


def _original(row: dict[str, Any], fields: dict[str, str], instance: int) -> dict[str, Any]:
    """The row as read; for nested alpaca instances, the row with only instance `instance`."""
    if INSTANCES not in fields:
        return row
    column = fields[INSTANCES]
    return {**row, column: [row[column][instance]]}

