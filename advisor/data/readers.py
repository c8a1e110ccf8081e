"""Read one data file into raw rows, each with the line it starts on, and the rows that cannot be read.

`load.py` calls `read_table` for each file. JSONL, JSON and CSV are read
with the standard library, line by line where there are lines, so that a bad
line (broken JSON, bytes that are not UTF-8, a CSV row with too many fields
or broken quoting) is reported with its number and the rest of the file is
still read: `datasets.load_dataset` stops at the first bad line and numbers
none, and on a clean file it reads what this scan reads (datasets 5 turns a
column of mixed types into a Json feature), so a second read through it would
only cost its 1.3 s import. Parquet, which has no lines, is read through
`datasets` (rows numbered from 1). A file that cannot be read at all
(missing, unknown extension, empty, not UTF-8 text, not JSON) raises
UserError.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..documents import TooDeep, parse_json
from ..errors import UserError
from .records import json_type
from .report import RecordError

#: File extension -> reader kind.
SUPPORTED = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
JSON_WRAPPER_KEY = "data"
_SNIFF_BYTES = 4096


@dataclass
class RawTable:
    """Rows as read (dicts of original columns), the line each starts on, and unreadable rows."""

    path: Path
    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    problems: list[RecordError] = field(default_factory=list)
    #: `columns` as a set, so that adding a row is linear in its columns (100k-column CSVs exist).
    _known: set[str] = field(default_factory=set, repr=False)

    def add_columns(self, columns: Iterable[str]) -> None:
        new = [column for column in columns if column not in self._known]
        self.columns.extend(new)
        self._known.update(new)

    def add(self, row: dict[str, Any], line: int) -> None:
        self.add_columns(row)
        self.rows.append(row)
        self.lines.append(line)

    def problem(self, line: int, message: str) -> None:
        self.problems.append(RecordError(line=line, message=message))


def reader_kind(path: Path) -> str:
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        accepted = ", ".join(SUPPORTED)
        raise UserError(f"cannot read '{path}': unknown extension '{path.suffix}'; accepted: {accepted}")
    return kind


def read_table(path: Path) -> RawTable:
    """The rows of one file; UserError when the file cannot be read at all."""
    kind = reader_kind(path)
    if kind == "parquet":
        table = RawTable(path=path, kind=kind)
        for index, row in enumerate(_read_parquet(path)):
            table.add(row, index + 1)
        return table
    lines, bad_lines = _decoded_lines(path)
    table = RawTable(path=path, kind=kind)
    if kind == "jsonl":
        _scan_jsonl(lines, bad_lines, table)
    elif kind == "json":
        _read_json_document(path, lines, bad_lines, table)
    else:
        _scan_csv(lines, bad_lines, table, delimiter="\t" if kind == "tsv" else ",")
    return table


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    """Parquet has no lines to report and no bad ones to skip: `datasets` reads it whole."""
    try:
        import datasets

        datasets.disable_progress_bars()
        # Its reader logs a broken file at ERROR before raising; our one line says it instead.
        datasets.logging.set_verbosity(datasets.logging.CRITICAL)
        with tempfile.TemporaryDirectory(prefix="advisor-datasets-") as cache_dir:
            return datasets.load_dataset(
                "parquet", data_files=str(path), split="train", cache_dir=cache_dir, keep_in_memory=True
            ).to_list()
    except Exception as error:  # pyarrow and datasets raise many types; the message is what matters
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot read '{path}': not a readable Parquet file ({reason})")


def _decoded_lines(path: Path) -> tuple[list[str], dict[int, str]]:
    """The file's lines (newlines kept) and, per 1-based line that is not UTF-8, what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read '{path}': {error.strerror or error}")
    if not data.strip():
        raise UserError(f"cannot read '{path}': the file is empty")
    head = data[:_SNIFF_BYTES]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise UserError(f"cannot read '{path}': not UTF-8 text (it looks like UTF-16 or binary); save it as UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines, bad_lines = [], {}
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            bad_lines[number] = f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1})"
            lines.append(raw.decode("utf-8", errors="replace"))
    if len(bad_lines) == sum(1 for line in lines if line.strip()):
        raise UserError(f"cannot read '{path}': not UTF-8 text (no line decodes); save it as UTF-8")
    return lines, bad_lines


def _scan_jsonl(lines: list[str], bad_lines: dict[int, str], table: RawTable) -> None:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if number in bad_lines:
            table.problem(number, bad_lines[number])
            continue
        try:
            row = parse_json(line.rstrip("\r\n"))
        except json.JSONDecodeError as error:
            table.problem(number, f"invalid JSON: {error.msg} (column {error.colno})")
            continue
        except TooDeep as error:
            table.problem(number, str(error))
            continue
        if not isinstance(row, dict):
            table.problem(number, f"expected a JSON object, got {json_type(row)}")
            continue
        table.add(row, number)


def _read_json_document(path: Path, lines: list[str], bad_lines: dict[int, str], table: RawTable) -> None:
    """A JSON array, or {"data": [...]}; a .json file that is really JSON Lines is read as such."""
    if bad_lines:
        number = min(bad_lines)
        raise UserError(f"cannot read '{path}': line {number} is {bad_lines[number]}")
    text = "".join(lines)
    try:
        document = parse_json(text)
    except TooDeep as error:
        raise UserError(f"cannot read '{path}': {error}")
    except json.JSONDecodeError as error:
        if text.lstrip().startswith("{") and sum(1 for line in lines if line.strip()) > 1:
            table.kind = "jsonl"
            _scan_jsonl(lines, bad_lines, table)
            return
        raise UserError(f"cannot read '{path}': invalid JSON at line {error.lineno} column {error.colno}: {error.msg}")
    if isinstance(document, dict) and isinstance(document.get(JSON_WRAPPER_KEY), list):
        document = document[JSON_WRAPPER_KEY]
    if not isinstance(document, list):
        keys = ", ".join(document) if isinstance(document, dict) else json_type(document)
        raise UserError(f"cannot read '{path}': expected a JSON array of records or {{\"data\": [...]}}, got {keys}")
    for index, element in enumerate(document):
        if isinstance(element, dict):
            table.add(element, index + 1)
        else:
            table.problem(index + 1, f"element {index + 1} is not a JSON object (got {json_type(element)})")


def _scan_csv(lines: list[str], bad_lines: dict[int, str], table: RawTable, delimiter: str) -> None:
    csv.field_size_limit(2**31 - 1)  # long documents are legitimate; the default 128 KiB is not a data error
    reader = csv.reader(io.StringIO("".join(lines), newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        header = []
    except csv.Error as error:
        raise UserError(f"cannot read '{table.path}': the header line is not valid CSV ({error})")
    header = [name.strip() for name in header]
    if not any(header):
        raise UserError(f"cannot read '{table.path}': the first line must be a header of column names")
    duplicated = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicated:
        raise UserError(f"cannot read '{table.path}': duplicate column(s) {', '.join(duplicated)} in the header")
    table.add_columns(header)
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            previous_end = reader.line_num
            if "end of data" in str(error):
                table.problem(start, 'a quoted field opened here never closes (unbalanced ")')
            else:
                table.problem(start, f"bad CSV quoting: {error}")
            continue
        end = previous_end = reader.line_num
        if not values or (len(values) == 1 and not values[0].strip()):
            continue
        bad = [number for number in range(start, end + 1) if number in bad_lines]
        if bad:
            table.problem(bad[0], bad_lines[bad[0]])
        elif len(values) > len(header):
            table.problem(start, f"has {len(values)} fields, the header has {len(header)} (an unquoted '{delimiter}'?)")
        else:
            table.add(dict(zip(header, values)), start)
