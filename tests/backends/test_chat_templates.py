"""Chat SFT trains on exactly what inference sees, with the real templates of the big chat families.

For each family (chat_tokenizers.py: its published template and special tokens
on a tiny BPE) a system + two-round conversation must encode to the very ids
`apply_chat_template` gives (one BOS, never two), and the tokens that carry
loss must be exactly each assistant message and its end-of-turn marker.
"""

from __future__ import annotations

import pytest

from advisor.backends.tasks import ALPACA_PROMPT, IGNORE_INDEX, encode_records

from chat_tokenizers import FAMILIES, chat_tokenizer, save_tiny_chat_model
from conftest import make_plan, run_cli, save_plan, write_jsonl

SYSTEM = {"role": "system", "content": "you are a terse assistant"}
ROUNDS = [
    {"role": "user", "content": "name the colour of the sky"},
    {"role": "assistant", "content": "it is blue"},
    {"role": "user", "content": "and the grass"},
    {"role": "assistant", "content": "green"},
]


def conversation(family: str) -> list[dict[str, str]]:
    # Gemma 2's template refuses a system message (raise_exception): two rounds only.
    return ROUNDS if family == "gemma2" else [SYSTEM, *ROUNDS]


def encode_one(tokenizer, messages, seq_len: int = 4096):
    return encode_records([{"messages": messages}], "chat", tokenizer, seq_len).features[0]


def loss_runs(tokenizer, feature) -> list[str]:
    """The decoded runs of consecutive loss-carrying tokens."""
    runs, current = [], []
    for token, label in zip(feature["input_ids"], feature["labels"]):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_trained_ids_are_the_chat_template_ids_and_only_assistant_turns_carry_loss(family):
    tokenizer = chat_tokenizer(family)
    messages = conversation(family)
    feature = encode_one(tokenizer, messages)

    assert feature["input_ids"] == tokenizer.apply_chat_template(messages)["input_ids"]
    if FAMILIES[family].bos:  # the template writes BOS and tokenizer(text) would add it again: once only
        assert feature["input_ids"].count(tokenizer.bos_token_id) == 1
        assert feature["input_ids"][0] == tokenizer.bos_token_id
    end = FAMILIES[family].end_of_turn
    lead = " " if family == "mistral" else ""  # Mistral writes " " + content; the BPE merges it into the word
    assert loss_runs(tokenizer, feature) == [f"{lead}it is blue{end}", f"{lead}green{end}"]


def test_system_user_and_header_tokens_all_carry_no_loss():
    tokenizer = chat_tokenizer("llama3.1")
    feature = encode_one(tokenizer, conversation("llama3.1"))
    learned = [token for token, label in zip(feature["input_ids"], feature["labels"]) if label != IGNORE_INDEX]
    header = tokenizer.convert_tokens_to_ids(["<|start_header_id|>", "<|end_header_id|>"])
    assert not set(header) & set(learned)
    assert tokenizer.bos_token_id not in learned
    assert learned.count(tokenizer.convert_tokens_to_ids("<|eot_id|>")) == 2  # only the two assistant turns' ends
    masked = tokenizer.decode([t for t, label in zip(feature["input_ids"], feature["labels"]) if label == IGNORE_INDEX])
    for text in ("you are a terse assistant", "name the colour of the sky", "and the grass", "Cutting Knowledge"):
        assert text in masked


def test_qwen3_reasoning_is_learned_only_where_the_template_keeps_it():
    """Qwen3 drops the reasoning of assistant turns before the last user message: those turns train the answer."""
    tokenizer = chat_tokenizer("qwen3")
    messages = [
        SYSTEM,
        {"role": "user", "content": "name the colour of the sky"},
        {"role": "assistant", "content": "<think>\nsky reasoning\n</think>\n\nit is blue"},
        {"role": "user", "content": "and the grass"},
        {"role": "assistant", "content": "<think>\ngrass reasoning\n</think>\n\ngreen"},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert "sky reasoning" not in rendered  # the template rewrote the first assistant turn
    feature = encode_one(tokenizer, messages)
    assert feature["input_ids"] == tokenizer.apply_chat_template(messages)["input_ids"]
    assert loss_runs(tokenizer, feature) == [
        "it is blue<|im_end|>", "<think>\ngrass reasoning\n</think>\n\ngreen<|im_end|>"]


def test_an_assistant_turn_the_template_rewrites_beyond_recognition_refuses_the_record():
    tokenizer = chat_tokenizer("qwen2.5")
    tokenizer.chat_template = (  # a template that rewrites the assistant's words: they cannot be found as written
        "{% for m in messages %}<|im_start|>{{ m.role }}\n"
        "{% if m.role == 'assistant' %}{{ m.content | replace('blue', 'BLUE') }}{% else %}{{ m.content }}{% endif %}"
        "<|im_end|>\n"
        "{% endfor %}"
    )
    encoded = encode_records([{"messages": ROUNDS}, {"messages": [ROUNDS[0], {"role": "assistant", "content": "42"}]}],
                             "chat", tokenizer, 4096)
    assert encoded.dropped == [0]  # never a fallback to training on every token
    assert "assistant message 2" in encoded.refused[0] and "left out" in encoded.refused[0]
    assert loss_runs(tokenizer, encoded.features[1]) == ["42<|im_end|>"]


def test_a_template_with_generation_markers_masks_through_transformers():
    """TRL's Llama 3 training template (Llama 3.0 plus {% generation %} blocks), read without importing trl (slow)."""
    from importlib.util import find_spec
    from pathlib import Path

    trl = Path(find_spec("trl").submodule_search_locations[0])
    tokenizer = chat_tokenizer("llama3.1")
    tokenizer.chat_template = (trl / "chat_templates" / "llama3_training.jinja").read_text(encoding="utf-8")
    messages = [SYSTEM, *ROUNDS]
    feature = encode_one(tokenizer, messages)
    assert feature["input_ids"] == tokenizer.apply_chat_template(messages)["input_ids"]
    assert feature["input_ids"].count(tokenizer.bos_token_id) == 1
    assert loss_runs(tokenizer, feature) == ["it is blue<|eot_id|>", "green<|eot_id|>"]


@pytest.mark.parametrize("family", ["llama3.1", "mistral", "qwen2.5"])
def test_alpaca_trains_on_the_ids_inference_tokenizes(family):
    tokenizer = chat_tokenizer(family)
    record = {"instruction": "name the colour of the sky", "input": "", "output": "it is blue"}
    feature = encode_records([record], "alpaca", tokenizer, 4096).features[0]
    prompt = ALPACA_PROMPT.format(**record)
    assert feature["input_ids"] == tokenizer(prompt + "it is blue" + tokenizer.eos_token)["input_ids"]
    assert feature["input_ids"][: len(tokenizer(prompt)["input_ids"])] == tokenizer(prompt)["input_ids"]
    if tokenizer.bos_token_id is not None:
        assert feature["input_ids"].count(tokenizer.bos_token_id) == 1
    assert loss_runs(tokenizer, feature) == ["it is blue" + tokenizer.eos_token]


@pytest.mark.slow
def test_lora_on_a_llama3_chat_model_reloads_and_generates_with_its_template(tmp_path, capsys):
    model_dir = save_tiny_chat_model("llama3.1", tmp_path / "tiny-llama3")
    records = [{"messages": [SYSTEM, {"role": "user", "content": f"name the colour of the {thing}"},
                             {"role": "assistant", "content": f"it is {colour}"}]}
               for thing, colour in [("sky", "blue"), ("grass", "green"), ("sea", "blue"), ("snow", "white")] * 3]
    data = write_jsonl(tmp_path / "chat.jsonl", records)
    plan = save_plan(make_plan(str(model_dir), method="lora", learning_rate=1e-3, seq_len=256),
                     tmp_path / "plan.json")
    out = tmp_path / "run"
    code, _, stderr = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", out, "--max-steps", 2)
    assert code == 0, stderr
    assert "chat template" in (out / "README.md").read_text()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), str(out))
    prompt = tokenizer.apply_chat_template([SYSTEM, {"role": "user", "content": "name the colour of the sky"}],
                                           add_generation_prompt=True, return_tensors="pt")
    assert prompt["input_ids"][0].tolist().count(tokenizer.bos_token_id) == 1
    with torch.no_grad():
        generated = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > prompt["input_ids"].shape[1]


@pytest.mark.slow
def test_the_preflight_names_a_refused_conversation_by_line_and_why(tmp_path, capsys):
    import json

    from transformers import AutoTokenizer

    model_dir = save_tiny_chat_model("qwen2.5", tmp_path / "tiny-qwen")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = tokenizer.chat_template.replace("message.content",
                                                              "message.content | replace('blue', '')")
    tokenizer.save_pretrained(model_dir)
    data = write_jsonl(tmp_path / "chat.jsonl", [{"messages": ROUNDS[:2]}, {"messages": ROUNDS[2:]}])
    plan = save_plan(make_plan(str(model_dir), method="lora", seq_len=256), tmp_path / "plan.json")
    code, stdout, _ = run_cli(capsys, "execute", plan, "--data", data, "--output-dir", tmp_path / "run", "--dry-run",
                              "--no-probe", "--json")
    preflight = json.loads(stdout)["preflight"]
    assert not preflight["ok"] and preflight["rows_without_loss"] == 1
    assert [error["line"] for error in preflight["errors"]] == [1]
    assert "assistant message 2 does not appear" in preflight["errors"][0]["message"]
