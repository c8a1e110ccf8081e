"""User-facing errors: one clear line and an exit code, never a traceback.

Every command catches `UserError` (and pydantic's `ValidationError`, through
`describe_validation_error`) at the top of the CLI and prints `error: <line>`.
"""

from __future__ import annotations

import typing
from typing import Iterable

from pydantic import ValidationError

#: Exit codes of the public contract (CONTRACT.md "Exit codes and errors").
EXIT_OK = 0
EXIT_NO = 1
EXIT_USAGE = 2
#: A run stopped by Ctrl-C or SIGTERM (128 + SIGINT), as shells report it; it resumes.
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A mistake in what the user gave us: printed as one line, exit 2 by default."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`; did you mean 'x'?` when a close known name exists, else ''."""
    import difflib  # only on a mistake: a plan never needs it

    close = difflib.get_close_matches(str(word), list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def describe_validation_error(error: ValidationError, model: type | None = None) -> str:
    """Turn pydantic's errors into one line naming the key and what is accepted.

    An unknown key is reported before anything else: a misspelt required key
    also shows up as "missing", and the misspelling is the cause.
    """
    errors = error.errors(include_url=False)
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    location = ".".join(str(part) for part in first["loc"]) or "input"
    key = str(first["loc"][-1]) if first["loc"] else location
    if first["type"] == "extra_forbidden":
        known = _field_names(model, first["loc"][:-1]) if model is not None else []
        return f"unknown key '{location}'{did_you_mean(key, known)}"
    if first["type"] == "missing":
        return f"missing required key '{location}'"
    message = first["msg"].removeprefix("Value error, ")  # our own validators' ValueError text
    if first["type"] in ("enum", "literal_error"):
        return f"invalid value {_shown(first['input'])} for '{location}': {message.lower()}"
    return f"invalid value {_shown(first.get('input'))} for '{location}': {message}"


def _shown(value: object, limit: int = 80) -> str:
    """repr(value), cut to `limit` characters: a megabyte of input is not an error line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field_names(model: type, path: tuple) -> list[str]:
    """Field names (and aliases) of the model found by walking `path` from `model`."""
    current = model
    for part in path:
        field = getattr(current, "model_fields", {}).get(part)
        nested = _model_in(getattr(field, "annotation", None))
        if nested is None:
            return []
        current = nested
    names = []
    for name, field in getattr(current, "model_fields", {}).items():
        names.append(name)
        if field.alias:
            names.append(field.alias)
    return names


def _model_in(annotation: object) -> type | None:
    """The pydantic model an annotation holds: itself, or the model inside Optional[...] / a union."""
    if hasattr(annotation, "model_fields"):
        return annotation  # type: ignore[return-value]
    for argument in typing.get_args(annotation):
        if hasattr(argument, "model_fields"):
            return argument
    return None
