"""One normalised record per format, as a pydantic model, and what to say when one is bad.

`load.py` validates every candidate record (built by `formats.py` from a raw
row) against the model of its format; a failure becomes one line of the
validation report, naming the ORIGINAL column (e.g. `category`, not `label`).
`stats.py` and `leakage.py` read the texts of a record through the helpers at
the bottom, so every module agrees on what "the text" of a record is.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Optional, get_args

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, TypeAdapter, ValidationError,
    model_validator,
)

from .report import DataFormat

Role = Literal["system", "user", "assistant", "tool"]
ROLES = get_args(Role)
#: ShareGPT's `from` values and the chat role each becomes.
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "tool": "tool", "user": "user", "assistant": "assistant"}


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


def _scalar_label_to_str(value: Any) -> Any:
    """Labels are kept as strings: 3 -> "3", true -> "true"; lists, objects and null stay invalid."""
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return value


NonEmptyText = Annotated[StrictStr, AfterValidator(_not_blank)]
Label = Annotated[StrictStr, BeforeValidator(_scalar_label_to_str), AfterValidator(_not_blank)]


class RecordModel(BaseModel):
    # extra keys (a message's "name", "tool_calls", "weight") are left out of the normalised record
    model_config = ConfigDict(extra="ignore")


class ClassificationRecord(RecordModel):
    text: NonEmptyText
    label: Label


class AlpacaRecord(RecordModel):
    instruction: NonEmptyText
    input: StrictStr = ""
    output: NonEmptyText


class ChatMessage(RecordModel):
    role: Role
    content: NonEmptyText


class ChatRecord(RecordModel):
    messages: list[ChatMessage] = Field(min_length=1)
    system: Optional[StrictStr] = Field(None, exclude=True, description="ShareGPT's separate system column")

    @model_validator(mode="after")
    def _system_first_and_has_assistant(self) -> "ChatRecord":
        if self.system and self.system.strip():
            self.messages.insert(0, ChatMessage(role="system", content=self.system))
        if not any(message.role == "assistant" for message in self.messages):
            raise ValueError("has no assistant message: nothing to learn")
        return self


class TextRecord(RecordModel):
    text: NonEmptyText


_TURNS = TypeAdapter(list[ChatMessage])


class PreferenceRecord(RecordModel):
    """One preference pair in a layout TRL's DPOTrainer reads: texts, or message lists.

    Texts: prompt, chosen and rejected are strings. Messages: chosen and rejected
    are the assistant turns after a prompt list; without a prompt column they
    are whole conversations, and the turns both share are the prompt.
    """

    prompt: Optional[Any] = None
    chosen: Any
    rejected: Any

    @model_validator(mode="after")
    def _one_layout(self) -> "PreferenceRecord":
        kinds = {_layout(self.chosen, "chosen"), _layout(self.rejected, "rejected")}
        if len(kinds) > 1:
            raise ValueError("mixes texts and message lists: chosen and rejected must both be texts or both lists")
        if kinds == {"text"}:
            if self.prompt is None or _layout(self.prompt, "prompt") != "text":
                raise ValueError("needs a prompt text: chosen and rejected are texts")
            return self
        chosen, rejected = _TURNS.validate_python(self.chosen), _TURNS.validate_python(self.rejected)
        if self.prompt is None:
            shared = _shared_turns(chosen, rejected)
            if not shared:
                raise ValueError("chosen and rejected share no prompt turns; add a prompt column")
            prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
        elif _layout(self.prompt, "prompt") == "messages":
            prompt = _TURNS.validate_python(self.prompt)
        else:
            raise ValueError("has a prompt text with message lists: give the prompt as messages too")
        if chosen[0].role != "assistant" or rejected[0].role != "assistant":
            raise ValueError("chosen and rejected must start with the assistant's answer to the prompt")
        self.prompt, self.chosen, self.rejected = (
            [message.model_dump() for message in turns] for turns in (prompt, chosen, rejected))
        return self


def _layout(value: Any, field: str) -> str:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"'{field}' is empty")
        return "text"
    if isinstance(value, list) and value:
        return "messages"
    raise ValueError(f"'{field}' must be a text or a non-empty list of messages, got {json_type(value)}")


def _shared_turns(chosen: list[ChatMessage], rejected: list[ChatMessage]) -> int:
    """How many leading turns both conversations share, leaving each at least its last turn."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    return shared


RECORD_MODELS: dict[str, type[RecordModel]] = {
    "classification": ClassificationRecord,
    "alpaca": AlpacaRecord,
    "chat": ChatRecord,
    "text": TextRecord,
    "preference": PreferenceRecord,
}


def normalise_record(format: DataFormat, candidate: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The record as a plain dict, or ValueError with one message naming the original columns."""
    try:
        return RECORD_MODELS[format].model_validate(candidate).model_dump()
    except ValidationError as error:
        raise ValueError(describe_problems(error, names)) from None


def describe_problems(error: ValidationError, names: dict[str, str]) -> str:
    """All problems of one record, '; '-joined; `names` maps normalised field names to original ones."""
    problems = []
    for problem in error.errors(include_url=False):
        where = _location(problem["loc"], names)
        kind = problem["type"]
        if kind == "missing":
            problems.append(f"missing field '{where}'")
        elif kind in ("string_type", "list_type", "model_type", "dict_type", "model_attributes_type"):
            expected = {"string_type": "a string", "list_type": "a list of messages"}.get(kind, "an object with role and content")
            problems.append(f"'{where}' must be {expected}, got {json_type(problem['input'])}")
        elif kind == "too_short":
            problems.append(f"'{where}' is empty")
        elif kind == "literal_error":
            accepted = ", ".join(ROLES)
            problems.append(f"unknown role {problem['input']!r} at '{where}'; accepted: {accepted} (ShareGPT: human, gpt)")
        elif kind == "value_error":
            reason = str(problem["ctx"]["error"])
            problems.append(f"'{where}' {reason}" if where else f"record {reason}")
        else:
            problems.append(f"'{where}': {problem['msg']}")
    return "; ".join(problems)


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for messages ('number', 'list', 'null')."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _location(location: tuple, names: dict[str, str]) -> str:
    """('messages', 2, 'role') -> 'conversations[2].from' for ShareGPT rows."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = names.get(part, part)
            text += f".{name}" if text else name
    return text


def turns_text(value: Any) -> str:
    """A preference field as text: itself, or its messages' contents."""
    return value if isinstance(value, str) else "\n".join(message["content"] for message in value)


def training_text(format: DataFormat, record: dict[str, Any]) -> str:
    """All the text of a record the model reads (token lengths, near-duplicates).

    A preference pair: the prompt with the longer of its two answers, the longest sequence a step sees.
    """
    if format == "preference":
        answers = (turns_text(record["chosen"]), turns_text(record["rejected"]))
        return turns_text(record["prompt"]) + "\n" + max(answers, key=len)
    if format == "chat":
        return "\n".join(message["content"] for message in record["messages"])
    if format == "alpaca":
        return "\n".join(part for part in (record["instruction"], record["input"], record["output"]) if part)
    return record["text"]


def input_text(format: DataFormat, record: dict[str, Any]) -> str:
    """What the model is asked (leakage: the same question in train and test)."""
    prompt = prompt_text(format, record)
    return record["text"] if prompt is None else prompt


def prompt_text(format: DataFormat, record: dict[str, Any]) -> Optional[str]:
    """The part before the response a generative record trains on; None for text and classification."""
    if format == "alpaca":
        return "\n".join(part for part in (record["instruction"], record["input"]) if part)
    if format == "preference":
        return turns_text(record["prompt"])
    if format == "chat":
        messages = record["messages"]
        last_answer = max(i for i, message in enumerate(messages) if message["role"] == "assistant")
        return "\n".join(message["content"] for message in messages[:last_answer])
    return None
