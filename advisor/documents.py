"""Documents in and out: JSON/TOML/YAML input files, one JSON document on stdout, plan files.

Shared by the CLI and the backends (train.py loads its plan.json here), so
neither imports the other.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import UserError, describe_validation_error
from .models import Plan


def print_json(document: Any) -> None:
    """Write one JSON document to stdout (the contract: nothing else on stdout with --json)."""
    if isinstance(document, BaseModel):
        text = document.model_dump_json(indent=2)
    else:
        text = json.dumps(document, indent=2, default=str)
    sys.stdout.write(text + "\n")


def read_structured_file(path: str) -> dict[str, Any]:
    """A JSON, TOML or YAML mapping from `path`, chosen by its extension."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"cannot read '{path}': no such file")
    text = file.read_text(encoding="utf-8", errors="strict")
    suffix = file.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise UserError(f"cannot read '{path}': unknown format '{suffix}'; accepted: .json, .toml, .yaml, .yml")
    except UserError:
        raise
    except Exception as error:  # each parser has its own error type; the message is what matters
        raise UserError(f"cannot parse '{path}': {str(error).splitlines()[0]}")
    if not isinstance(data, dict):
        raise UserError(f"'{path}' must hold a mapping of keys to values")
    return data


def load_plan(path: str) -> Plan:
    """A plan file (`advisor plan --json`, or the same keys in TOML/YAML), strictly validated."""
    try:
        return Plan.model_validate(read_structured_file(path))
    except ValidationError as error:
        raise UserError(f"plan '{path}': {describe_validation_error(error, Plan)}") from None


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Contract: an existing output is refused unless --overwrite."""
    if path.exists() and not overwrite:
        raise UserError(f"'{path}' already exists; pass --overwrite to replace it")
