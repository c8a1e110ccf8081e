"""Which format a table of rows is, which columns play which part, and the candidate records of a row.

`load.py` calls `detect_mapping` once per file (from its column names and the
user's --format/--text-column/--label-column) and `candidates` once per row.

Detection (`--format auto`), first match wins, column names case-insensitive:
- preference: `chosen` and `rejected` columns, with a `prompt` column (texts,
  or message lists) or chat-style chosen/rejected conversations that share
  their prompt turns (the layouts TRL's DPOTrainer reads);
- chat: a `messages` column (OpenAI style role/content) or `conversations`
  (ShareGPT from/value; `human` -> user, `gpt` -> assistant, a `system` column
  becomes a leading system message);
- alpaca: an instruction column (instruction, prompt, question) with an output
  column (output, response, completion, answer) or a nested `instances` list;
- classification: a text column and a label column (label, labels, category,
  intent, class, target), or whatever --text-column/--label-column name;
- text: a text column (text, sentence, content, utterance, query, question,
  review, document).

Nested alpaca `instances` (the self-instruct seed-task layout
`{"instruction", "instances": [{"input", "output"}, ...]}`) map to ONE alpaca
record per instance: the task's instruction with that instance's input and
output; each record keeps the task's line number.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

from ..errors import UserError, did_you_mean
from .records import SHAREGPT_ROLES
from .report import DataFormat

FORMATS = ("alpaca", "chat", "text", "classification", "preference")
PREFERENCE_COLUMNS = ("chosen", "rejected")
CHAT_COLUMNS = ("messages", "conversations")
INSTRUCTION_COLUMNS = ("instruction", "prompt", "question")
OUTPUT_COLUMNS = ("output", "response", "completion", "answer")
INPUT_COLUMNS = ("input", "context")
TEXT_COLUMNS = ("text", "sentence", "content", "utterance", "query", "question", "review", "document")
LABEL_COLUMNS = ("label", "labels", "category", "intent", "class", "target")
INSTANCES = "instances"
SYSTEM = "system"


class ColumnMapping(BaseModel):
    """The format and, for each normalised field, the original column that holds it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: DataFormat
    fields: dict[str, str]


class RowProblem(ValueError):
    """A row that cannot become records at all (e.g. `instances` is not a list)."""


def detect_mapping(
    columns: list[str],
    format: str = "auto",
    text_column: Optional[str] = None,
    label_column: Optional[str] = None,
    source: str = "the data",
) -> ColumnMapping:
    """The mapping for these columns; UserError naming the columns when none fits."""
    if format not in ("auto", *FORMATS):
        raise UserError(f"unknown format '{format}'{did_you_mean(format, FORMATS)}; accepted: auto, {', '.join(FORMATS)}")
    for flag, column in (("--text-column", text_column), ("--label-column", label_column)):
        if column is not None and column not in columns:
            raise UserError(
                f"{flag} '{column}' is not a column of {source}{did_you_mean(column, columns)}; columns: {', '.join(columns)}"
            )
    found = _Finder(columns)
    preference = [found.first((name,)) for name in PREFERENCE_COLUMNS]
    chat = found.first(CHAT_COLUMNS)
    instruction = found.first(INSTRUCTION_COLUMNS)
    output = found.first(OUTPUT_COLUMNS) or found.first((INSTANCES,))
    text = text_column or found.first(TEXT_COLUMNS)
    label = label_column or found.first(LABEL_COLUMNS)

    if format == "auto" and all(preference):
        format = "preference"
    if format == "auto":
        format = _guess_format(chat, instruction and output, text, label, explicit=bool(text_column or label_column))
        if format is None:
            raise UserError(
                f"cannot tell the format of {source} from its columns ({', '.join(columns) or 'none'}); expected "
                "alpaca (instruction, input, output), chat (messages or conversations), classification "
                "(a text column and a label column) or text (a text column); pass --format and --text-column/--label-column"
            )
    if format == "preference":
        if not all(preference):
            raise _missing(source, "preference", "a chosen column and a rejected column", columns)
        fields = dict(zip(PREFERENCE_COLUMNS, preference))
        if found.first(("prompt",)):
            fields["prompt"] = found.first(("prompt",))
        return ColumnMapping(format="preference", fields=fields)
    if format == "chat":
        if not chat:
            raise _missing(source, "chat", "a messages or conversations column", columns)
        fields = {"messages": chat}
        if found.first((SYSTEM,)):
            fields[SYSTEM] = found.first((SYSTEM,))
        return ColumnMapping(format="chat", fields=fields)
    if format == "alpaca":
        if not (instruction and output):
            raise _missing(source, "alpaca", "an instruction column and an output column (or instances)", columns)
        fields = {"instruction": instruction}
        if found.first((INSTANCES,)) == output:
            fields[INSTANCES] = output
        else:
            fields["output"] = output
            if found.first(INPUT_COLUMNS):
                fields["input"] = found.first(INPUT_COLUMNS)
        return ColumnMapping(format="alpaca", fields=fields)
    if not text:
        raise _missing(source, format, "a text column (name it with --text-column)", columns)
    if format == "classification":
        if not label:
            raise _missing(source, "classification", "a label column (name it with --label-column)", columns)
        return ColumnMapping(format="classification", fields={"text": text, "label": label})
    return ColumnMapping(format="text", fields={"text": text})


def _guess_format(chat: Optional[str], alpaca: Optional[str], text: Optional[str], label: Optional[str], explicit: bool) -> Optional[str]:
    """The first format whose columns are there; --text-column/--label-column rule out chat and alpaca."""
    if chat and not explicit:
        return "chat"
    if alpaca and not explicit:
        return "alpaca"
    if text and label:
        return "classification"
    return "text" if text else None


def candidates(row: dict[str, Any], mapping: ColumnMapping) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """(candidate record, normalised name -> original name) for each record a row holds."""
    fields = mapping.fields
    if mapping.format == "alpaca":
        return _alpaca_candidates(row, fields)
    if mapping.format == "chat":
        return [_chat_candidate(row, fields)]
    candidate = {name: row[column] for name, column in fields.items() if column in row}
    return [(candidate, dict(fields))]


def _alpaca_candidates(row: dict[str, Any], fields: dict[str, str]) -> list[tuple[dict[str, Any], dict[str, str]]]:
    instruction_column = fields["instruction"]
    head = {"instruction": row[instruction_column]} if instruction_column in row else {}
    if INSTANCES not in fields:
        candidate = dict(head)
        for name in ("input", "output"):
            if name in fields and fields[name] in row:
                candidate[name] = row[fields[name]]
        if candidate.get("input", "") is None:
            candidate["input"] = ""  # a null input is common and means "no input"
        return [(candidate, dict(fields))]
    instances = row.get(fields[INSTANCES])
    if not isinstance(instances, list) or not instances:
        raise RowProblem(f"'{fields[INSTANCES]}' must be a non-empty list of {{input, output}} objects")
    result = []
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RowProblem(f"'{fields[INSTANCES]}[{index}]' must be an object with input and output")
        candidate = {**head, "input": instance.get("input") or ""}
        if "output" in instance:
            candidate["output"] = instance["output"]
        names = {"instruction": instruction_column, "input": f"{fields[INSTANCES]}[{index}].input",
                 "output": f"{fields[INSTANCES]}[{index}].output"}
        result.append((candidate, names))
    return result


def _chat_candidate(row: dict[str, Any], fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    column = fields["messages"]
    if column not in row:
        return {}, {"messages": column}
    messages = row[column]
    if not isinstance(messages, list) or not any(isinstance(m, dict) and "from" in m for m in messages):
        return {"messages": messages}, {"messages": column}
    candidate: dict[str, Any] = {"messages": [_sharegpt_message(message) for message in messages]}
    names = {"messages": column, "role": "from", "content": "value"}
    if SYSTEM in fields and fields[SYSTEM] in row:
        candidate[SYSTEM] = row[fields[SYSTEM]]
        names[SYSTEM] = fields[SYSTEM]
    return candidate, names


def _sharegpt_message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    converted = {}
    if "from" in message:
        converted["role"] = SHAREGPT_ROLES.get(message["from"], message["from"]) if isinstance(message["from"], str) else message["from"]
    if "value" in message:
        converted["content"] = message["value"]
    return converted


def _missing(source: str, format: str, needed: str, columns: list[str]) -> UserError:
    return UserError(f"{format} data needs {needed}; columns of {source}: {', '.join(columns) or 'none'}")


class _Finder:
    """Case-insensitive lookup of well-known column names, returning the file's own spelling."""

    def __init__(self, columns: list[str]):
        self._by_lower: dict[str, str] = {}
        for column in columns:
            self._by_lower.setdefault(column.lower(), column)

    def first(self, names: tuple[str, ...]) -> Optional[str]:
        return next((self._by_lower[name] for name in names if name in self._by_lower), None)
