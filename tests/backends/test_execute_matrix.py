"""Every method x every task kind, as a user runs them: `advisor plan`, `advisor execute`, then plain transformers/peft.

Each cell plans with the real planner (`advisor plan --method M --out plan.json`
on a tiny model built from a config), trains two steps through `advisor
execute` (evaluate and checkpoint every step, save), then loads the output the
way the model card says, with plain transformers or peft, and predicts: a few
generated tokens for a causal LM, one label for a classifier. The task kinds
are the ones the planner can emit: a causal LM on alpaca, chat and plain-text
records (Llama; GPT-2 for plain text), sequence classification with an
encoder (BERT) and with a decoder (Llama). The decoders ship without a pad
token, as GPT-2, Llama and Qwen do.

A method that cannot serve a task is refused by `advisor plan` with its
reason (exit 2), never at run time; REFUSED lists those cells. FAST is a
representative subset that runs by default; the rest is marked slow (about
8 s a cell on 2 busy cores).
The models have hidden size 96: the adapter's default bottleneck (64) must
be smaller than the hidden size.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import COLOURS, THINGS, alpaca_records, run_cli, tokenizer_words, word_tokenizer, write_jsonl

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

METHODS = ["full", "freeze", "lora", "dora", "ia3", "prefix", "prompt_tuning", "adapter", "rslora"]
#: task kind -> (the plan's --task, the tiny model, the data format)
TASKS = {
    "alpaca": ("instruction", "llama", "alpaca"),
    "chat": ("instruction", "llama", "chat"),
    "text": ("domain-adaptation", "gpt2", "text"),
    "cls-encoder": ("classification", "bert", "classification"),
    "cls-decoder": ("classification", "llama", "classification"),
}
#: (method, task kind) -> what `advisor plan` says instead of planning it.
REFUSED = {
    ("prefix", "cls-encoder"): "prefix tuning cannot train a classification head",
    ("prefix", "cls-decoder"): "prefix tuning cannot train a classification head",
}
#: Run by default: every task kind, the bugs this matrix found, the example plugin. The rest is slow.
FAST = {
    ("prompt_tuning", "alpaca"), ("lora", "cls-decoder"), ("prompt_tuning", "cls-decoder"), ("adapter", "cls-encoder"),
    ("rslora", "text"), ("prefix", "chat"),
}
#: With the preflight probe (it evaluates, so it crashed on prompt tuning); the rest runs with --no-probe.
PROBED = {("prompt_tuning", "alpaca"), ("lora", "cls-decoder")}
HIDDEN = 96
CLASS_LABELS = COLOURS[:3]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Llama and a GPT-2 with the word-level tokenizer and no pad token, a BERT with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from advisor.backends.loading import model_source

    root = tmp_path_factory.mktemp("matrix-models")
    tokenizer = word_tokenizer(tokenizer_words())
    tokenizer.pad_token = None  # as GPT-2, Llama and Qwen ship: the run must add one
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    models = {
        "llama": LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, **ids)),
        "gpt2": GPT2LMHeadModel(GPT2Config(
            vocab_size=len(tokenizer), n_embd=HIDDEN, n_layer=2, n_head=4, n_positions=128, **ids)),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = root / name
        model.save_pretrained(paths[name])
        tokenizer.save_pretrained(paths[name])
    minilm = AutoTokenizer.from_pretrained(model_source("all-minilm-l6-v2"))
    paths["bert"] = root / "bert"
    BertModel(BertConfig(vocab_size=minilm.vocab_size, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=128)).save_pretrained(paths["bert"])
    minilm.save_pretrained(paths["bert"])
    return paths


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("matrix-data")
    alpaca = alpaca_records(24)
    chat = [{"messages": [{"role": "user", "content": record["instruction"]},
                          {"role": "assistant", "content": record["output"]}]} for record in alpaca]
    text = [{"text": f"{record['instruction']} . {record['output']}"} for record in alpaca]
    classification = root / "classification.csv"
    with open(classification, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for index in range(24):  # 24 distinct rows, 8 of each label
            label = CLASS_LABELS[(index + index // len(THINGS)) % 3]
            writer.writerow([f"the {THINGS[index % len(THINGS)]} is {label}", label])
    return {
        "alpaca": write_jsonl(root / "alpaca.jsonl", alpaca),
        "chat": write_jsonl(root / "chat.jsonl", chat),
        "text": write_jsonl(root / "text.jsonl", text),
        "classification": classification,
    }


def _cells() -> list:
    cells = []
    for method in METHODS:
        for task in TASKS:
            marks = () if (method, task) in FAST or (method, task) in REFUSED else (pytest.mark.slow,)
            cells.append(pytest.param(method, task, marks=marks, id=f"{method}-{task}"))
    return cells


def _plan(capsys, model: Path, task: str, method: str, out: Path) -> tuple[int, str]:
    code, _, stderr = run_cli(capsys, "plan", "--model", model, "--task", task, "--examples", 2000, "--gpu", "cpu",
                              "--method", method, "--json", "--out", out)
    return code, stderr


@pytest.mark.parametrize("method, task_kind", _cells())
def test_plan_execute_reload_predict(method, task_kind, tiny_models, data_files, tmp_path, capsys):
    task, model_name, data_format = TASKS[task_kind]
    model = tiny_models[model_name]
    plan = tmp_path / "plan.json"
    code, stderr = _plan(capsys, model, task, method, plan)
    if (method, task_kind) in REFUSED:
        assert code == 2 and stderr.startswith("error: ") and REFUSED[method, task_kind] in stderr, stderr
        assert "Traceback" not in stderr and not plan.exists()
        return
    assert code == 0, stderr
    assert json.loads(plan.read_text())["training"]["method"] == method

    out = tmp_path / "run"
    probe = () if (method, task_kind) in PROBED else ("--no-probe",)
    code, _, stderr = run_cli(capsys, "execute", plan, "--data", data_files[data_format], "--output-dir", out,
                              "--max-steps", 2, "--save-steps", 1, *probe)
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert [loss["step"] for loss in metrics["main"]["losses"]] == [1, 2]
    scored = {"accuracy", "macro_f1"} if task == "classification" else {"token_accuracy", "perplexity"}
    assert scored <= set(metrics["main"]["final_eval"])
    assert [evaluation["step"] for evaluation in metrics["main"]["evaluations"]] == [1, 2]
    assert list((out / "checkpoints").glob("checkpoint-[12]/trainer_state.json"))  # the Trainer keeps the best

    if task == "classification":
        _classify(out, model, method, decoder=model_name != "bert")
    else:
        _generate(out, model, method)


def _load(out: Path, base_source: Path, auto: type, method: str):
    """The model card's recipe: plain transformers, or the base (with the run's config) plus peft.

    The bottleneck adapter is plain torch modules inside the layers, which no
    transformers class has: its model card points to load_trained, which
    rebuilds the base with the plugin (loaded plainly, its projections would be
    missing and random).
    """
    if (out / "adapter_config.json").is_file():
        base = auto.from_pretrained(base_source, config=transformers.AutoConfig.from_pretrained(out))
        return peft.PeftModel.from_pretrained(base, out)
    if method == "adapter":
        from advisor.backends.reload import load_trained

        assert "load_trained(" in (out / "README.md").read_text()  # what the model card tells the user
        return load_trained(out)[0]
    model, info = auto.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    return model


def _generate(out: Path, base_source: Path, method: str) -> None:
    model = _load(out, base_source, transformers.AutoModelForCausalLM, method).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    inputs = tokenizer(["name the colour of the sky"], return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id)
    assert generated.shape == (1, inputs["input_ids"].shape[1] + 3)


def _classify(out: Path, base_source: Path, method: str, decoder: bool) -> None:
    model = _load(out, base_source, transformers.AutoModelForSequenceClassification, method).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    texts = ["the sky is red", "the sea is blue today"]
    with torch.no_grad():
        logits = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits
        alone = torch.cat([model(**tokenizer([text], return_tensors="pt")).logits for text in texts])
    assert logits.shape == (2, len(CLASS_LABELS))
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None  # a decoder finds the text's end by it
    assert {model.config.id2label[int(i)] for i in logits.argmax(-1)} <= set(CLASS_LABELS)
    if method == "prompt_tuning" and decoder:
        # transformers cannot find the padding in the embeddings prompt tuning feeds a decoder: it reads the
        # last position, so the run pads left (exact invariance is lost: the virtual tokens come before the pads).
        assert tokenizer.padding_side == "left"
    else:
        # The padded text is classified as it is alone: the head reads the text's last token, not padding.
        torch.testing.assert_close(logits, alone, atol=1e-4, rtol=1e-3)


def test_qlora_is_refused_at_plan_time_without_cuda(tiny_models, tmp_path, capsys):
    code, stderr = _plan(capsys, tiny_models["llama"], "instruction", "qlora", tmp_path / "plan.json")
    assert code == 2 and "--method qlora cannot be planned" in stderr and "needs a CUDA GPU" in stderr, stderr


def test_prompt_tuning_logits_are_scored_on_the_positions_of_the_labels():
    """peft puts the virtual tokens in front of the logits: the last positions are the ones the labels describe."""
    from advisor.backends.metrics import TokenAccuracyScorer, argmax_logits

    labels = torch.tensor([[-100, 1, 2, 3]])
    virtual = torch.zeros(1, 3, 5)
    virtual[..., 0] = 9.0  # the virtual positions predict token 0, which is never right
    text = torch.nn.functional.one_hot(torch.tensor([[1, 2, 3, 4]]), 5).float()  # each position: the next token
    predicted = argmax_logits(torch.cat([virtual, text], dim=1), labels)
    assert predicted.tolist() == [[1, 2, 3, 4]]
    scorer = TokenAccuracyScorer()
    result = scorer(transformers.EvalPrediction(predictions=predicted, label_ids=labels), compute_result=True)
    assert result == {"token_accuracy": 1.0}
