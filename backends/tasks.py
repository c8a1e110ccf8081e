"""Records -> token ids and labels, per data format; and the collator that pads each batch.

`local.py` encodes every record once, then picks rows by the split's indices.
Formats (the data toolkit's normalised records):

- classification {"text", "label"}: a sequence-classification example; the
  label's id comes from `label2id` (names sorted, saved in the model config).
- alpaca {"instruction", "input", "output"}: the Stanford Alpaca prompt, loss
  on the output (and the end-of-sequence token) only.
- chat {"messages"}: the tokenizer's chat template, loss on the assistant
  turns only. A tokenizer without a template gets the fallback format
  `FALLBACK_CHAT_HEADER` (documented in the model card), the same way.
- text {"text"}: plain language modelling, loss on every token.

Every record is one string tokenized once, so the trained ids are the ids the
model sees at inference: alpaca and text are `tokenizer(text)` (its own BOS, if
any), chat is exactly `tokenizer.apply_chat_template(messages)` (the template
writes the special tokens; nothing is added in front). The loss mask comes from
character spans of that string, mapped to tokens by the fast tokenizer's
offsets (a token carries loss when it overlaps a span). For chat the spans are
the template's own `{% generation %}` blocks when it has them
(`return_assistant_tokens_mask`); otherwise each assistant message is found in
the rendered conversation, in order, after the user turn before it, together
with the end-of-turn marker the template writes after an assistant message
(`<|eot_id|>`, `<|im_end|>`, `</s>`, `<end_of_turn>`: what the model must learn
to stop). A template that rewrites an assistant message (Qwen3 drops the
reasoning of earlier turns) is followed: the answer is found as rendered, and
reasoning only where the template kept it. An assistant message that cannot be
found is never guessed at: the record is refused with the reason
(`Encoded.refused`) and counted with the dropped rows.

Why not TRL's SFTTrainer masking (trl 1.16, measured with the real templates of
tests/fixtures/chat_templates): `assistant_only_loss` needs `{% generation %}`
markers, which none of the Llama 3.1/3.2, Qwen2.5/3, Mistral v0.3 or Gemma 2/3
templates has. `get_training_chat_template` swaps in a marked copy only for
templates it knows byte for byte: it raises for Llama 3.1, Llama 3.2 and
Mistral v0.3, and its Qwen3 copy renders other ids than the model's template
(an empty `<think></think>` block in every earlier assistant turn, which the
real template leaves out), so the model would train on a context it never sees
at inference; only Qwen2.5 and Gemma 2/3 come out identical. `completion_only_loss`
tokenizes the prompt on its own and cuts at the common prefix, which drops the
prompt's last tokens where they merge with the completion. A template that has
the markers is masked here by the same transformers call TRL makes
(`return_assistant_tokens_mask`).

Labels are -100 on tokens that carry no loss. Sequences are truncated on the
right at the plan's `seq_len`; a row left with no token to learn is dropped
and counted (the preflight names such rows before a run). Padding is dynamic:
each batch pads to its longest row.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError

TaskKind = Literal["classification", "causal_lm", "preference"]
#: peft's TaskType name for each kind (what Method.build takes).
PEFT_TASK_TYPES = {"classification": "SEQ_CLS", "causal_lm": "CAUSAL_LM", "preference": "CAUSAL_LM"}
IGNORE_INDEX = -100

ALPACA_PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
#: Each message's header in the fallback chat format: header, content (assistant: + EOS), newline.
FALLBACK_CHAT_HEADER = "<|{role}|>\n"
#: A chat template that marks the assistant's tokens itself (transformers' `return_assistant_tokens_mask`).
GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")
#: How reasoning models write a reasoning block inside an assistant message (Qwen3, DeepSeek-R1).
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
#: The exchange rendered to learn what the template writes after an assistant message.
END_OF_TURN_PROBE = [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]

Span = tuple[int, int]  # characters [start, end) of the rendered text that carry loss


def task_kind(data_format: str, plan_task: str) -> TaskKind:
    """Which model head the data needs; a classification plan needs classification data and back."""
    if (plan_task == "preference") != (data_format == "preference"):
        raise UserError(
            f"the plan is for task '{plan_task}' (plan.json profile.task) but the data is in '{data_format}' format; "
            + ("preference training needs prompt/chosen/rejected pairs" if plan_task == "preference"
               else "preference pairs train with a preference method: plan with --task preference")
        )
    if data_format == "preference":
        return "preference"
    kind: TaskKind = "classification" if data_format == "classification" else "causal_lm"
    if (plan_task == "classification") != (kind == "classification"):
        raise UserError(
            f"the plan is for task '{plan_task}' (plan.json profile.task) but the data is in '{data_format}' format; "
            + ("classification needs text,label rows" if plan_task == "classification"
               else "use alpaca, chat or text records (or plan with --task classification)")
        )
    return kind


class Encoded(BaseModel):
    """Every record's features (None where nothing is left to learn), and what truncation did."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    features: list[Any] = Field(description="per record: a dict of token lists and labels, or None if dropped")
    truncated: int = 0
    refused: dict[int, str] = Field(
        default_factory=dict, description="record index -> why its loss could not be placed (it is dropped)")

    @property
    def dropped(self) -> list[int]:
        return [index for index, feature in enumerate(self.features) if feature is None]

    def select(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The features at `indices`, dropped rows left out."""
        return [self.features[i] for i in indices if self.features[i] is not None]


def label_names(records: Sequence[dict[str, Any]]) -> list[str]:
    """The classification labels, sorted: their position is the id saved in the model config."""
    return sorted({record["label"] for record in records})


def encode_records(
    records: Sequence[dict[str, Any]], data_format: str, tokenizer: Any, seq_len: int,
    label2id: dict[str, int] | None = None,
) -> Encoded:
    if not records:
        return Encoded(features=[])
    if data_format == "classification":
        return _encode_classification(records, tokenizer, seq_len, label2id or {})
    if data_format == "preference":
        from .preference import encode_pairs

        return encode_pairs(records, tokenizer, seq_len)
    if data_format not in ("alpaca", "chat", "text"):
        raise UserError(f"unknown data format '{data_format}'; known: classification, alpaca, chat, text, preference")
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("language-model data needs a fast tokenizer (the loss mask comes from its character "
                        "offsets); save the model with its tokenizer.json or load it with use_fast=True")
    end_of_turn = _end_of_turn(tokenizer) if data_format == "chat" and _template(tokenizer) else ""
    features: list[Any] = []
    refused: dict[int, str] = {}
    truncated = 0
    for index, record in enumerate(records):
        try:
            ids, labels = _encode_lm(record, data_format, tokenizer, end_of_turn)
        except TurnNotFound as reason:
            refused[index] = str(reason)
            features.append(None)
            continue
        if len(ids) > seq_len:
            truncated += 1
            ids, labels = ids[:seq_len], labels[:seq_len]
        keep = any(label != IGNORE_INDEX for label in labels)
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels} if keep else None)
    return Encoded(features=features, truncated=truncated, refused=refused)


def _encode_classification(
    records: Sequence[dict[str, Any]], tokenizer: Any, seq_len: int, label2id: dict[str, int]
) -> Encoded:
    texts = [record["text"] for record in records]
    full_lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    encoded = tokenizer(texts, truncation=True, max_length=seq_len)
    features = []
    for index, record in enumerate(records):
        feature = {key: values[index] for key, values in encoded.items()}
        feature["labels"] = label2id[record["label"]]
        features.append(feature)
    return Encoded(features=features, truncated=sum(length > seq_len for length in full_lengths))


class TurnNotFound(ValueError):
    """An assistant message the chat template's rendering does not show: its loss span is unknown."""


def _encode_lm(record: dict[str, Any], data_format: str, tokenizer: Any, end_of_turn: str) -> tuple[list, list]:
    """One record's ids (tokenized once, as at inference) and labels (-100 outside the loss spans)."""
    if data_format == "alpaca":
        prompt = (ALPACA_PROMPT_WITH_INPUT if record.get("input") else ALPACA_PROMPT).format(**record)
        text = prompt + record["output"] + (tokenizer.eos_token or "")
        return tokenize_with_loss(tokenizer, text, [(len(prompt), len(text))], add_special_tokens=True)
    if data_format == "text":
        return tokenize_with_loss(tokenizer, record["text"], [(0, len(record["text"]))], add_special_tokens=True)
    messages = record["messages"]
    template = _template(tokenizer)
    if not template:
        text, spans = _fallback_chat(messages, tokenizer)
        return tokenize_with_loss(tokenizer, text, spans, add_special_tokens=True)
    if GENERATION_MARKER.search(template):
        encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
        ids, mask = list(encoded["input_ids"]), encoded["assistant_masks"]
        if not any(mask):
            raise TurnNotFound("the chat template's {% generation %} blocks mark no token of this conversation")
        return ids, [token if marked else IGNORE_INDEX for token, marked in zip(ids, mask)]
    # What apply_chat_template(messages) tokenizes: the rendering, with no special token added to it.
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    return tokenize_with_loss(tokenizer, rendered, assistant_spans(messages, rendered, end_of_turn),
                              add_special_tokens=False)


def tokenize_with_loss(tokenizer: Any, text: str, spans: list[Span], add_special_tokens: bool) -> tuple[list, list]:
    """`text` tokenized once; a token carries loss when its characters overlap one of `spans`."""
    encoding = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    labels = [
        token if end > start and any(start < span_end and end > span_start for span_start, span_end in spans)
        else IGNORE_INDEX
        for token, (start, end) in zip(ids, encoding["offset_mapping"])
    ]
    return ids, labels


def _template(tokenizer: Any) -> str | None:
    if not getattr(tokenizer, "chat_template", None):
        return None
    return tokenizer.get_chat_template()


def _end_of_turn(tokenizer: Any) -> str:
    """What the template writes right after an assistant message's content (trailing whitespace left out)."""
    try:
        rendered = tokenizer.apply_chat_template(END_OF_TURN_PROBE, tokenize=False)
    except Exception as error:  # the template's own raise_exception, or a Jinja error
        raise UserError(f"the tokenizer's chat template cannot render a plain user/assistant exchange ({error}); "
                        "fix the template or use a tokenizer whose template renders chat messages") from error
    content = END_OF_TURN_PROBE[-1]["content"]
    at = rendered.rfind(content)
    return rendered[at + len(content):].rstrip() if at >= 0 else ""


def assistant_spans(messages: list[dict[str, Any]], rendered: str, end_of_turn: str) -> list[Span]:
    """Each assistant message's characters in `rendered`, its end-of-turn marker included.

    Messages are found in order, each after the previous user message (templates
    move or merge the system prompt, so it is no anchor). A message is searched
    as written, then with its surrounding whitespace trimmed as templates do, and
    always directly followed by the end-of-turn marker: that pins it to its own
    turn even when the same words appear in a header or in a user message.
    """
    spans: list[Span] = []
    cursor = 0
    for number, message in enumerate(messages, start=1):
        content = message.get("content") or ""
        if message["role"] == "assistant":
            start, end = _locate_assistant(number, content, rendered, cursor, end_of_turn)
            spans.append((start, end))
            cursor = end
        elif message["role"] != "system" and content.strip():
            found = rendered.find(content.strip(), cursor)
            if found >= 0:
                cursor = found + len(content.strip())
    return spans


def _locate_assistant(number: int, content: str, rendered: str, cursor: int, end_of_turn: str) -> Span:
    answer, reasoning = content, ""
    if THINK_CLOSE in content:  # a reasoning block: templates render (or drop) it apart from the answer
        head, _, answer = content.rpartition(THINK_CLOSE)
        reasoning = head.split(THINK_OPEN)[-1].strip()
    for candidate in dict.fromkeys([answer, answer.lstrip(), answer.rstrip(), answer.strip()]):
        start = rendered.find(candidate + end_of_turn, cursor) if candidate else -1
        if start >= 0:
            break
    else:
        marker = f" followed by {end_of_turn!r}" if end_of_turn else ""
        raise TurnNotFound(
            f"assistant message {number} does not appear{marker} in the chat template's rendering of the "
            "conversation (the template rewrites it), so its loss span is unknown and the record is left out")
    end = start + len(candidate) + len(end_of_turn)
    if reasoning:  # kept by the template (e.g. Qwen3's last turn): the model learns to write it, tags included
        at = rendered.find(reasoning, cursor, start)
        if at >= 0:
            opening = rendered.rfind(THINK_OPEN, cursor, at)
            start = opening if opening >= 0 else at
    return start, end


def _fallback_chat(messages: list[dict[str, str]], tokenizer: Any) -> tuple[str, list[Span]]:
    """The documented format for a tokenizer without a template; loss on assistant content + EOS."""
    text, spans = "", []
    for message in messages:
        text += FALLBACK_CHAT_HEADER.format(role=message["role"])
        if message["role"] == "assistant":
            start = len(text)
            text += message["content"] + (tokenizer.eos_token or "")
            spans.append((start, len(text)))
        else:
            text += message["content"]
        text += "\n"
    return text, spans


def make_collator(kind: TaskKind, tokenizer: Any) -> Any:
    """Dynamic padding: labels padded with -100 for language modelling."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

    if kind == "classification":
        return DataCollatorWithPadding(tokenizer)
    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding=True)


def ensure_pad_token(tokenizer: Any) -> None:
    """Causal LM tokenizers often have no pad token: pad with EOS (masked out of the loss anyway)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError("the tokenizer has neither a pad nor an end-of-sequence token; add one to the tokenizer")
        tokenizer.pad_token = tokenizer.eos_token
