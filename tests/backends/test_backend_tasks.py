"""Records -> token ids and labels: loss only on responses, truncation, dropped rows, label ids."""

from __future__ import annotations

import pytest

from advisor.backends.tasks import ALPACA_PROMPT_WITH_INPUT, IGNORE_INDEX, encode_records, label_names, task_kind
from advisor.errors import UserError

from conftest import tokenizer_words, word_tokenizer

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} "
    "{% if message['role'] == 'assistant' %}{{ eos_token }} {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


@pytest.fixture
def tokenizer():
    return word_tokenizer(tokenizer_words())


def learned_words(tokenizer, feature) -> str:
    return tokenizer.decode([t for t, label in zip(feature["input_ids"], feature["labels"]) if label != IGNORE_INDEX])


def test_alpaca_loss_only_on_the_output_and_eos(tokenizer):
    record = {"instruction": "name the colour of the sky", "input": "the sky is blue", "output": "the sky is blue today"}
    feature = encode_records([record], "alpaca", tokenizer, 512).features[0]
    assert learned_words(tokenizer, feature) == "the sky is blue today </s>"
    prompt_tokens = len(tokenizer(ALPACA_PROMPT_WITH_INPUT.format(**record), add_special_tokens=False)["input_ids"])
    first_learned = next(i for i, label in enumerate(feature["labels"]) if label != IGNORE_INDEX)
    assert first_learned == 1 + prompt_tokens  # <s> and the whole prompt carry no loss
    assert feature["input_ids"][0] == tokenizer.bos_token_id


def test_chat_template_learns_every_assistant_turn_and_no_user_turn(tokenizer):
    tokenizer.chat_template = CHAT_TEMPLATE
    messages = [
        {"role": "user", "content": "name the colour of the sky"},
        {"role": "assistant", "content": "blue"},
        {"role": "user", "content": "and the grass"},
        {"role": "assistant", "content": "green"},
    ]
    feature = encode_records([{"messages": messages}], "chat", tokenizer, 512).features[0]
    assert learned_words(tokenizer, feature) == "blue </s> green </s>"


def test_chat_without_template_uses_the_documented_fallback(tokenizer):
    assert tokenizer.chat_template is None
    messages = [{"role": "system", "content": "be short"}, {"role": "user", "content": "the sky"},
                {"role": "assistant", "content": "blue"}]
    feature = encode_records([{"messages": messages}], "chat", tokenizer, 512).features[0]
    assert learned_words(tokenizer, feature) == "blue </s>"
    written = "<|system|>\nbe short\n<|user|>\nthe sky\n<|assistant|>\nblue</s>\n"
    assert feature["input_ids"] == tokenizer(written)["input_ids"]


def test_text_learns_every_token_after_bos(tokenizer):
    feature = encode_records([{"text": "the sky is blue"}], "text", tokenizer, 512).features[0]
    assert feature["input_ids"] == tokenizer("the sky is blue")["input_ids"]  # one tokenizer call, as at inference
    assert feature["input_ids"][0] == tokenizer.bos_token_id
    assert feature["labels"] == [IGNORE_INDEX] + feature["input_ids"][1:]


def test_truncation_that_cuts_the_whole_response_drops_the_row(tokenizer):
    long_prompt = {"instruction": "name the colour of the sky " * 20, "input": "", "output": "blue"}
    short = {"instruction": "the sky", "input": "", "output": "blue"}
    encoded = encode_records([long_prompt, short], "alpaca", tokenizer, 32)
    assert encoded.dropped == [0]
    assert encoded.truncated == 1
    assert len(encoded.select([0, 1])) == 1


def test_classification_ids_follow_sorted_label_names():
    from transformers import AutoTokenizer

    from advisor.backends.loading import model_source

    tokenizer = AutoTokenizer.from_pretrained(model_source("all-minilm-l6-v2"))
    records = [{"text": "my card is lost", "label": "lost_card"}, {"text": "pin is blocked", "label": "blocked"}]
    names = label_names(records)
    encoded = encode_records(records, "classification", tokenizer, 8, {n: i for i, n in enumerate(names)})
    assert names == ["blocked", "lost_card"]
    assert [f["labels"] for f in encoded.features] == [1, 0]
    assert all(len(f["input_ids"]) <= 8 for f in encoded.features)


def test_a_classification_plan_refuses_instruction_data():
    with pytest.raises(UserError, match="classification"):
        task_kind("alpaca", "classification")
    assert task_kind("chat", "instruction") == "causal_lm"


def test_no_records_encode_to_nothing(tokenizer):
    assert encode_records([], "classification", tokenizer, 16).features == []
    assert encode_records([], "alpaca", tokenizer, 16).features == []
