"""Documents in and out: JSON/TOML/YAML input files, one JSON document on stdout, plan files.

Shared by the CLI and the backends (train.py loads its plan.json here), so
neither imports the other.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from .errors import UserError, describe_validation_error
from .models import Plan

#: The deepest nesting of arrays/objects accepted in anything a person gives (data rows, profiles,
#: plans, --set values). Real documents stay far below; deeper ones would exhaust Python's
#: recursion limit in the parsers, pydantic or json.dumps.
MAX_NESTING = 100
TOO_DEEP = f"nested more than {MAX_NESTING} levels deep"
#: The most values a profile or plan file may hold, counting every use of a YAML alias: a
#: "billion laughs" file is a few lines that expand to 10^9 values.
MAX_SETTINGS_VALUES = 100_000


class TooDeep(ValueError):
    """A document nested deeper than MAX_NESTING (or holding more values than allowed)."""

    def __init__(self, message: str = TOO_DEEP) -> None:
        super().__init__(message)


def parse_json(text: str) -> Any:
    """Strict JSON: json.loads without NaN/Infinity (not JSON, though Python writes them) and refusing
    documents nested deeper than MAX_NESTING (TooDeep) instead of overflowing the stack."""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise TooDeep() from None
    except json.JSONDecodeError:
        raise
    except ValueError as error:  # NaN/Infinity, or an integer longer than Python converts (4300 digits)
        constant = next((name for name in ("-Infinity", "Infinity", "NaN") if name in str(error)), None)
        raise json.JSONDecodeError(str(error), text, text.find(constant) if constant else 0) from None
    if text.count("[") + text.count("{") > MAX_NESTING:  # fewer brackets cannot nest deeper: skip the walk
        check_nesting(value)
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (write null, or a number)")


def check_nesting(value: Any, max_values: Optional[int] = None) -> None:
    """TooDeep when lists/dicts inside `value` nest deeper than MAX_NESTING, or hold more than
    `max_values` values in all (iterative: no recursion)."""
    stack = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if max_values is not None and seen > max_values:
            raise TooDeep(f"holds more than {max_values:,} values")
        if isinstance(item, (dict, list, tuple)):
            if depth > MAX_NESTING:
                raise TooDeep()
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))


def print_json(document: Any) -> None:
    """Write one JSON document to stdout (the contract: nothing else on stdout with --json)."""
    sys.stdout.write(json_text(document) + "\n")


def json_text(document: Any) -> str:
    """A model or plain data as indented JSON.

    A file name that is not UTF-8 reaches Python as lone surrogates (surrogateescape); pydantic's
    serializer refuses them, json.dumps writes them as \\u escapes, which is still valid JSON.
    """
    if isinstance(document, BaseModel):
        try:
            return document.model_dump_json(indent=2)
        except PydanticSerializationError:
            document = document.model_dump(mode="json")
    return json.dumps(document, indent=2, default=str)


def read_structured_file(path: str) -> dict[str, Any]:
    """A JSON, TOML or YAML mapping from `path`, chosen by its extension."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"cannot read '{path}': {'not a regular file' if file.exists() else 'no such file'}")
    text = read_text(file)
    suffix = file.suffix.lower()
    try:
        if suffix == ".json":
            data = parse_json(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            # libyaml's loader when built: the pure-Python scanner is quadratic in the nesting depth
            # (1,500 levels take 6 s), libyaml refuses deep nesting at once.
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        else:
            raise UserError(f"cannot read '{path}': unknown format '{suffix}'; accepted: .json, .toml, .yaml, .yml")
        check_nesting(data, MAX_SETTINGS_VALUES)
    except UserError:
        raise
    except RecursionError:  # the TOML and YAML parsers recurse per level
        raise UserError(f"cannot parse '{path}': {TOO_DEEP}")
    except Exception as error:  # each parser has its own error type; the message is what matters
        raise UserError(f"cannot parse '{path}': {(str(error).strip() or type(error).__name__).splitlines()[0]}")
    if not isinstance(data, dict):
        raise UserError(f"'{path}' must hold a mapping of keys to values")
    return data


def read_text(file: Path) -> str:
    """The UTF-8 text of a file a person gave; one line (UserError) when it is unreadable or not UTF-8."""
    try:
        data = file.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read '{file}': {error.strerror or error}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"cannot read '{file}': not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
                        f"{error.start}); save it as UTF-8")


def load_plan(path: str) -> Plan:
    """A plan file (`advisor plan --json`, or the same keys in TOML/YAML), strictly validated."""
    try:
        return Plan.model_validate(read_structured_file(path))
    except ValidationError as error:
        raise UserError(f"plan '{path}': {describe_validation_error(error, Plan)}") from None


def write_new_file(path: Path, text: str) -> None:
    """Write `text` to `path`, which must not exist yet; one line (UserError) when it cannot be written."""
    refuse_existing(path, overwrite=False)
    try:
        with path.open("x", encoding="utf-8") as file:  # "x": never replace a file that appeared meanwhile
            file.write(text)
    except OSError as error:
        raise UserError(f"cannot write '{path}': {error.strerror or error}")


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Contract: an existing output is refused unless --overwrite."""
    if path.exists() and not overwrite:
        raise UserError(f"'{path}' already exists; pass --overwrite to replace it")
