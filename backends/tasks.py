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

Labels are -100 on tokens that carry no loss. Sequences are truncated on the
right at the plan's `seq_len`; a row left with no token to learn is dropped
and counted (the preflight names such rows before a run). Padding is dynamic:
each batch pads to its longest row.
"""

from __future__ import annotations

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


def task_kind(data_format: str, plan_task: str) -> TaskKind:
    """Which model head the data needs; a classification plan needs classification data and back."""
    if (plan_task == "preference") != (data_format == "preference"):
        raise UserError(
            f"the plan is for task '{plan_task}' but the data is in '{data_format}' format; "
            + ("preference training needs prompt/chosen/rejected pairs" if plan_task == "preference"
               else "preference pairs train with a preference method: plan with --task preference")
        )
    if data_format == "preference":
        return "preference"
    kind: TaskKind = "classification" if data_format == "classification" else "causal_lm"
    if (plan_task == "classification") != (kind == "classification"):
        raise UserError(
            f"the plan is for task '{plan_task}' but the data is in '{data_format}' format; "
            + ("classification needs text,label rows" if plan_task == "classification"
               else "use alpaca, chat or text records (or plan with --task classification)")
        )
    return kind


class Encoded(BaseModel):
    """Every record's features (None where nothing is left to learn), and what truncation did."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    features: list[Any] = Field(description="per record: a dict of token lists and labels, or None if dropped")
    truncated: int = 0

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
    features, truncated = [], 0
    for record in records:
        ids, labels = _segments_to_ids(segments(record, data_format, tokenizer), tokenizer)
        if len(ids) > seq_len:
            truncated += 1
            ids, labels = ids[:seq_len], labels[:seq_len]
        keep = any(label != IGNORE_INDEX for label in labels)
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels} if keep else None)
    return Encoded(features=features, truncated=truncated)


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


def segments(record: dict[str, Any], data_format: str, tokenizer: Any) -> list[tuple[str, bool]]:
    """The record as (text, carries loss) pieces, in order."""
    if data_format == "alpaca":
        template = ALPACA_PROMPT_WITH_INPUT if record.get("input") else ALPACA_PROMPT
        return [(template.format(**record), False), (record["output"], True), (tokenizer.eos_token or "", True)]
    if data_format == "chat":
        if getattr(tokenizer, "chat_template", None):
            return _template_segments(record["messages"], tokenizer)
        return _fallback_segments(record["messages"], tokenizer)
    if data_format == "text":
        return [(record["text"], True)]
    raise UserError(f"unknown data format '{data_format}'; known: classification, alpaca, chat, text")


def _template_segments(messages: list[dict[str, str]], tokenizer: Any) -> list[tuple[str, bool]]:
    """Render turn by turn; an assistant turn is what its message adds after the generation prompt."""
    pieces: list[tuple[str, bool]] = []
    rendered = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True)
        turn = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False)
        if not (prompt.startswith(rendered) and turn.startswith(prompt)):
            # The template rewrites earlier turns (some strip reasoning): loss on the whole conversation.
            return [(tokenizer.apply_chat_template(messages, tokenize=False), True)]
        pieces += [(prompt[len(rendered):], False), (turn[len(prompt):], True)]
        rendered = turn
    whole = tokenizer.apply_chat_template(messages, tokenize=False)
    if whole.startswith(rendered) and len(whole) > len(rendered):
        pieces.append((whole[len(rendered):], False))
    return pieces


def _fallback_segments(messages: list[dict[str, str]], tokenizer: Any) -> list[tuple[str, bool]]:
    pieces: list[tuple[str, bool]] = []
    for message in messages:
        header = FALLBACK_CHAT_HEADER.format(role=message["role"])
        if message["role"] == "assistant":
            pieces += [(header, False), (message["content"] + (tokenizer.eos_token or ""), True), ("\n", False)]
        else:
            pieces.append((header + message["content"] + "\n", False))
    return pieces


def _segments_to_ids(pieces: list[tuple[str, bool]], tokenizer: Any) -> tuple[list[int], list[int]]:
    ids: list[int] = []
    labels: list[int] = []
    bos = tokenizer.bos_token_id
    if bos is not None and tokenizer("x")["input_ids"][:1] == [bos]:
        ids.append(bos)
        labels.append(IGNORE_INDEX)
    for text, trainable in pieces:
        if not text:
            continue
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trainable else [IGNORE_INDEX] * len(piece)
    return ids, labels


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
