"""The expert panel: scenarios a practitioner would sign off, from the seeds and 2024-26 practice.

Each scenario states a profile as a user would, and what an expert expects of the plan: the
approach, the method, key settings (exact values or ranges, as paths into the plan JSON), the
rules that must fire with what they cite, rules that must not fire, and what the plan's text
(its JSON and its rendered form) must and must not say. The scenarios cover every profile input;
none is answered by a rule written for it alone.
"""

from __future__ import annotations

import functools
import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import pytest
from rich.console import Console

from advisor.cli.render import render_plan
from advisor.models import Plan, Profile
from advisor.planner import make_plan, plan_for

LORA_RATES = (1e-4, 3e-4)
FULL_DECODER_RATES = (1e-5, 5e-5)
BERT_RATES = (2e-5, 5e-5)  # Devlin et al. 2018's grid; 000 § Definition and Process uses 2e-5


@functools.cache
def workspace() -> Path:
    """A folder for the panel's local model and data files (made once per test session)."""
    return Path(tempfile.mkdtemp(prefix="advisor-panel-"))


@functools.cache
def bert_base() -> str:
    """A BERT-base config.json (12 layers, 768 wide): the encoder the measured MiniLM recipe does not cover."""
    folder = workspace() / "bert-base-uncased"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "bert", "num_hidden_layers": 12, "hidden_size": 768, "intermediate_size": 3072,
        "num_attention_heads": 12, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2,
    }))
    return str(folder)


def intent_rows(path: Path, per_label: list[int]) -> str:
    """A Banking77-like CSV: label i has per_label[i] distinct rows."""
    lines = ["text,label"]
    for label, count in enumerate(per_label):
        lines += [f"question {row} about banking topic {label} with detail {label * 1000 + row},intent_{label}"
                  for row in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@functools.cache
def banking_400_rare() -> str:
    """400 rows over 77 intents, 12 of them with only 3 rows (a stratified 5-fold cannot be made)."""
    counts = [3] * 12 + [6] * 65
    counts[-1] += 400 - sum(counts)
    return intent_rows(workspace() / "banking-400.csv", counts)


@functools.cache
def banking_616_even() -> str:
    """616 rows over 77 intents, 8 each: stratified 5-fold works."""
    return intent_rows(workspace() / "banking-616.csv", [8] * 77)


@functools.cache
def banking_150() -> str:
    """150 rows over 77 intents: too few for a stratified 20% hold-out (30 rows, 77 labels)."""
    return intent_rows(workspace() / "banking-150.csv", [2] * 73 + [1] * 4)


@functools.cache
def banking_260() -> str:
    """260 rows over 77 intents, 3 or 4 each: stratified needs a hold-out of at least 77/260 = 0.296."""
    return intent_rows(workspace() / "banking-260.csv", [4] * 29 + [3] * 48)


Range = tuple[float, float]


@dataclass(frozen=True, eq=False)
class Scenario:
    name: str
    profile: dict[str, Any]
    approach: str
    method: Union[None, str, tuple[str, ...]]
    cites: dict[str, str]  # rule id -> text its source must contain
    settings: dict[str, Any] = field(default_factory=dict)  # JSON path -> value or (low, high)
    absent: tuple[str, ...] = ()
    says: tuple[str, ...] = ()
    never_says: tuple[str, ...] = ()
    complements: Optional[list[str]] = None
    data: Optional[Any] = None  # a function giving a data file path

    def plan(self) -> Plan:
        return cached_plan(self)


@functools.cache
def cached_plan(scenario: Scenario) -> Plan:
    overrides = {key: value() if callable(value) else value for key, value in scenario.profile.items()}
    if scenario.data is not None:
        return plan_for(Profile(**overrides, data=scenario.data()))
    return make_plan(Profile(**overrides))


def dig(document: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(document, list):
            document = document[int(part)]
        else:
            document = document[part]
    return document


def plan_text(plan: Plan) -> str:
    """Everything a person reads: the JSON, and the rendered plan."""
    buffer = io.StringIO()
    render_plan(plan, Console(file=buffer, width=400, color_system=None))
    return plan.model_dump_json() + "\n" + buffer.getvalue()


PANEL = [
    # -- prompting and retrieval: fine-tuning's poor candidates (002 § Use Cases, § Decision Framework)
    Scenario("one-off drafting job", dict(one_off=True, examples=2000), "prompting", None,
             {"approach.one-off": "002_cb6d472d11844b9e.txt § When to Fine-tune"}),
    Scenario("prices that change daily", dict(goal="knowledge", dynamic_knowledge=True, examples=20000), "rag", None,
             {"approach.dynamic-knowledge": "Decision Framework"}, absent=("method.lora-default",)),
    Scenario("statutes updated monthly, knowledge only", dict(goal="knowledge", continual_updates=True,
                                                              examples=50000), "rag", None,
             {"approach.dynamic-knowledge": "Decision Framework"}),
    Scenario("current statutes AND a house memo format", dict(goals=["knowledge", "behavior"], dynamic_knowledge=True,
                                                              examples=3000, model="llama-3.2-3b", gpu="a100-40gb"),
             "peft", "lora", {"approach.hybrid-rag": "Decision Framework"}, complements=["rag"],
             never_says=("use RAG meanwhile",)),
    Scenario("static FAQ facts and a house tone", dict(goals=["knowledge", "behavior"], examples=5000,
                                                       model="llama-3.2-1b", gpu="l4"),
             "peft", "lora", {"approach.knowledge-and-behavior": "1.2 The Duality of Goals"}, complements=["rag"]),
    Scenario("--goal knowledge --goal behavior via the goal field", dict(goal="knowledge", goals=["behavior"],
                                                                        examples=5000, gpu="l4"),
             "peft", "lora", {"approach.knowledge-and-behavior": "003_483fda984e781d7e.txt"}, complements=["rag"]),
    Scenario("3,000 knowledge examples", dict(goal="knowledge", task="qa", examples=3000), "rag", None,
             {"approach.knowledge-needs-scale": "1.2 The Duality of Goals"}),
    Scenario("10,001 knowledge examples: no cliff at 10k", dict(goal="knowledge", task="qa", examples=10001), "rag",
             None, {"approach.knowledge-mid-scale": "arxiv.org/abs/2312.05934"}),
    Scenario("30,000 noisy knowledge examples count as 6,000", dict(goal="knowledge", task="qa", examples=30000,
                                                                    quality="low"), "rag", None,
             {"approach.knowledge-needs-scale": "003_483fda984e781d7e.txt"}, says=("worth about 6000 clean ones",)),
    Scenario("static knowledge at scale", dict(goal="knowledge", task="generation", examples=200000,
                                               model="qwen2.5-1.5b", gpu="h100"), "full_finetune", "full",
             {"method.full-knowledge-at-scale": "5.1 A Decision Framework"},
             settings={"training.hyperparameters.epochs": 3, "training.precision": "mixed",
                       "training.hyperparameters.learning_rate": FULL_DECODER_RATES}),
    # -- how much data, and how good (002 § Data Quality Principles)
    Scenario("no examples at all", dict(examples=0), "prompting", None,
             {"approach.no-examples": "Use Cases for Fine-tuning"}, never_says=("Only 0 examples", "few-shot")),
    Scenario("no examples, knowledge in documents", dict(goal="knowledge", examples=0), "rag", None,
             {"approach.no-examples-knowledge": "Decision Framework"}, never_says=("Only 0 examples",)),
    Scenario("an encoder with no labels yet", dict(task="classification", examples=0, model="all-minilm-l6-v2",
                                                   gpu="cpu"), "peft", "freeze",
             {"approach.no-examples-encoder": "How Much Data is Needed?"},
             says=("cannot be prompted", "Label at least"), never_says=("prompt the base model",)),
    Scenario("40 examples of a behaviour", dict(examples=40), "prompting", None,
             {"approach.too-few-examples": "Use Cases for Fine-tuning"}, says=("few-shot",)),
    Scenario("150 noisy examples", dict(examples=150, quality="low"), "prompting", None,
             {"approach.too-few-examples": "002_cb6d472d11844b9e.txt"},
             says=("worth about 30 clean ones",), never_says=("high-quality dataset is sufficient", "10 epochs")),
    Scenario("2,000 noisy examples", dict(examples=2000, quality="low", gpu="l4"), "peft", "lora",
             {"approach.behavior-fine-tune-noisy": "Data Quality Principles", "data.low-quality": "002"},
             never_says=("'less is more'",)),
    Scenario("NER below the task's minimum", dict(task="ner", examples=200, gpu="l4"), "peft", "lora",
             {"data.under-minimum": "How Much Data is Needed?"}),
    # -- encoders (000 § Section 2; Devlin et al. 2018)
    Scenario("22M MiniLM with 50 labels", dict(task="classification", examples=50, model="all-minilm-l6-v2",
                                               gpu="cpu"), "peft", "freeze",
             {"approach.encoder-little-data": "Selective Layer Training",
              "method.encoder-freeze": "Selective Layer Training"},
             settings={"training.hyperparameters.method.trainable_layers": 1},
             never_says=("prompt the base model", "few-shot")),
    Scenario("MiniLM on Banking77 (10,003 rows)", dict(task="classification", examples=10003,
                                                       model="all-minilm-l6-v2", gpu="cpu"),
             "full_finetune", "full", {"training.small-encoder-rate": "benchmarks/results/encoder_rate.md"},
             settings={"training.hyperparameters.param_groups.0.learning_rate": 2e-4,
                       "training.hyperparameters.param_groups.1.learning_rate": 2e-3,
                       "training.data.validation_ratio": 0.1, "training.data.stratify": True,
                       "training.precision": "fp32"},
             absent=("training.method-learning-rate", "training.encoder-rate", "training.effective-batch",
                     "data.split-80-20", "training.new-layer-rate", "risk.forgetting-full"),
             never_says=("1e-5 to 5e-5", "80/20", "CUDA context", "replay")),
    Scenario("MiniLM with 50,000 labelled tickets", dict(task="classification", examples=50000,
                                                          model="all-minilm-l6-v2", gpu="l4"), "full_finetune", "full",
             {"training.epochs-large-data": "Critical Hyperparameters"},
             settings={"training.hyperparameters.epochs": 3, "training.data.validation_ratio": 0.1},
             never_says=("replay",)),
    Scenario("BERT-base classifier on a T4", dict(task="classification", examples=5000, model=bert_base, gpu="t4"),
             "full_finetune",
             "full", {"training.encoder-rate": "arxiv.org/abs/1810.04805"},
             settings={"training.hyperparameters.learning_rate": BERT_RATES,
                       "training.hyperparameters.param_groups.1.learning_rate": 1e-3,
                       "training.precision": "fp16", "training.hyperparameters.epochs": 5},
             absent=("training.small-encoder-rate", "risk.forgetting-full"), never_says=("2e-4",)),
    # -- LLM supervised tuning (000 § LoRA; Touvron et al. 2023)
    Scenario("1B instruction tuning on an A10G", dict(examples=3000, gpu="a10g"), "peft", "lora",
             {"method.lora-default": "Comparison: PEFT vs Full Fine-Tuning",
              "training.epochs-llm-sft": "arxiv.org/abs/2307.09288"},
             settings={"training.hyperparameters.method.r": 8, "training.hyperparameters.method.alpha": 16,
                       "training.hyperparameters.epochs": 3, "training.hyperparameters.learning_rate": LORA_RATES,
                       "training.hyperparameters.early_stopping_patience": 2, "training.precision": "bf16"}),
    Scenario("small instruction set stays at 3 epochs", dict(examples=600, gpu="l4"), "peft", "lora",
             {"training.epochs-llm-sft": "Llama 2"},
             settings={"training.hyperparameters.epochs": 3, "training.hyperparameters.method.dropout": 0.1},
             never_says=("10 epochs",)),
    Scenario("60k instructions on an 8B", dict(examples=60000, model="llama-3.1-8b", gpu="h100"), "peft", "lora",
             {"training.epochs-llm-sft-large": "arxiv.org/abs/2307.09288"},
             settings={"training.hyperparameters.epochs": 2, "training.data.validation_ratio": 0.1}),
    Scenario("reasoning on an 8B", dict(task="reasoning", examples=20000, model="llama-3.1-8b", gpu="h100"),
             "peft", "lora", {"training.rank-very-complex": "LoRA: The Most Popular PEFT Method"},
             settings={"training.hyperparameters.method.r": 32, "training.hyperparameters.method.alpha": 64}),
    Scenario("8B full fine-tune when the seeds' criteria hold", dict(examples=100000, quality="high",
                                                                    model="llama-3.1-8b", gpu="a100-80gb",
                                                                    num_gpus=8),
             "full_finetune", "full", {"method.full-criteria": "When to Use Full Fine-Tuning"},
             settings={"training.precision": "mixed", "training.hyperparameters.epochs": 1,
                       "training.hyperparameters.learning_rate": FULL_DECODER_RATES}),
    Scenario("the same data on 2 nodes x 8 A100: hybrid sharding", dict(examples=100000, quality="high",
                                                                        model="llama-3.1-8b", gpu="a100-80gb",
                                                                        num_gpus=8, num_nodes=2),
             "full_finetune", "full", {"memory.hybrid-sharding": "arxiv.org/abs/2304.11277"},
             settings={"estimate.config.sharding": "hybrid", "estimate.config.num_nodes": 2},
             says=("2 nodes x 8 GPUs",), absent=("memory.sharding", "memory.cpu-offload")),
    Scenario("the same data on one A10G: full does not fit", dict(examples=100000, quality="high",
                                                                  model="llama-3.1-8b", gpu="a10g"),
             "peft", "lora", {"method.lora-default": "Comparison: PEFT vs Full Fine-Tuning"},
             absent=("method.full-criteria",)),
    Scenario("code at scale gets a high rank with rsLoRA scaling", dict(task="code", examples=200000,
                                                                         model="llama-3.1-8b", gpu="h100"),
             "peft", "lora", {"training.rank-large-data": "arxiv.org/abs/2312.03732"},
             settings={"training.hyperparameters.method.r": 64, "training.hyperparameters.method.use_rslora": True,
                       "training.hyperparameters.epochs": 1}),
    # -- task families
    Scenario("chat transcripts", dict(task="chat", examples=8000, gpu="a10g"), "peft", "lora",
             {"training.rank-standard": "LoRA: The Most Popular PEFT Method"},
             settings={"training.hyperparameters.method.r": 8, "estimate.config.seq_len": (1024, 2048)}),
    Scenario("code completion", dict(task="code", examples=20000, model="llama-3.1-8b", gpu="h100"), "peft",
             "lora", {"training.rank-complex": "LoRA: The Most Popular PEFT Method"},
             settings={"training.hyperparameters.method.r": 16, "training.hyperparameters.epochs": 2}),
    Scenario("preference pairs", dict(task="preference", examples=12000, gpu="a100-40gb"), "peft", "dpo",
             {"method.preference-pairs": "RLHF", "training.epochs-preference": "arxiv.org/abs/2310.16944",
              "risk.preference-objective": "arxiv.org/abs/2305.18290"},
             absent=("method.lora-default",), says=("DPO",)),
    # -- general ability, continual updates, language
    Scenario("a 0.5B model that must keep its general ability", dict(examples=5000, model="qwen2.5-0.5b", gpu="l4",
                                                                     keep_general_ability=True),
             "peft", "lora", {"method.keep-general-ability": "arxiv.org/abs/2405.09673",
                              "risk.keep-general-ability": "Mitigation Strategies"},
             absent=("method.full-small-model",), says=("replay",)),
    Scenario("a 0.5B model for one task only", dict(examples=5000, model="qwen2.5-0.5b", gpu="l4"),
             "full_finetune", "full", {"method.full-small-model": "When to Use Full Fine-Tuning",
                                       "risk.forgetting-full": "Mitigation Strategies"}),
    Scenario("monthly updates of a behaviour model", dict(examples=4000, continual_updates=True, gpu="l4"),
             "peft", "lora", {"risk.continual-updates": "Continual Learning"}, complements=[]),
    Scenario("German customer mails", dict(examples=4000, language="de", gpu="l4"), "peft", "lora",
             {"risk.language-coverage": "arxiv.org/abs/2012.15613"}, says=("'de'",)),
    Scenario("English data has no tokenizer warning", dict(examples=4000, gpu="l4"), "peft", "lora",
             {"approach.behavior-fine-tune": "1.2 The Duality of Goals"}, absent=("risk.language-coverage",)),
    Scenario("two-stage domain adaptation", dict(task="qa", examples=5000, corpus_tokens=200_000_000,
                                                 model="llama-3.2-1b", gpu="a100-80gb"), "peft", "lora",
             {"approach.continued-pretraining": "Domain Adaptation"},
             settings={"stages.0.name": "continued-pretraining", "stages.1.name": "task-tuning",
                       # 000 § Domain Adaptation: stage 1 at 1e-5 (full fine-tuning fits), stage 2 even lower
                       "stages.0.method": "full", "stages.0.training.hyperparameters.learning_rate": (1e-5, 1e-5),
                       "stages.1.training.hyperparameters.learning_rate": (5e-5, 5e-5)}),
    Scenario("two-stage where full fine-tuning of the corpus does not fit", dict(
        task="qa", examples=5000, corpus_tokens=200_000_000, model="llama-3.1-8b", gpu="l4"), "peft", "lora",
             {"approach.continued-pretraining": "Domain Adaptation"},
             settings={"stages.0.method": "lora", "stages.0.training.hyperparameters.method.r": 64,
                       "stages.0.training.hyperparameters.method.use_rslora": True}),
    Scenario("an unlabelled corpus and no examples", dict(goal="knowledge", task="qa", examples=0,
                                                          corpus_tokens=500_000_000, model="qwen2.5-1.5b",
                                                          gpu="h100"),
             "full_finetune", "full", {"approach.corpus-only": "Domain Adaptation",
                                       "training.domain-pretraining-rate": "Domain Adaptation"},
             settings={"profile.examples": 0, "profile.task": "qa", "stages": [],
                       "training.hyperparameters.learning_rate": (1e-5, 1e-5),
                       "training.hyperparameters.seq_len": 2048},
             never_says=("No labelled examples yet: there is nothing to fine-tune on",)),
    # -- serving (003 § 3.3)
    Scenario("strict latency, one task", dict(examples=3000, latency="strict", gpu="a10g"), "peft", "lora",
             {"risk.merge-for-latency": "3.3 Deployment Considerations"}, absent=("risk.adapters-per-task",)),
    Scenario("strict latency and 12 tasks pull apart", dict(task="classification", examples=2000, tasks=12,
                                                            latency="strict", gpu="a10g"), "peft", "lora",
             {"risk.latency-versus-tasks": "3.3 Deployment Considerations"},
             absent=("risk.merge-for-latency", "risk.adapters-per-task")),
    Scenario("12 simple tasks on a 1B: LoRA, not soft prompts", dict(task="classification", examples=2000, tasks=12,
                                                                     latency="relaxed", gpu="a10g"), "peft", "lora",
             {"risk.adapters-per-task": "Sequential Multi-Task Learning with PEFT"},
             absent=("method.soft-prompt-many-simple-tasks",)),
    Scenario("12 simple tasks on a 70B: soft prompts", dict(task="classification", examples=2000, tasks=12,
                                                            latency="relaxed", model="llama-3.1-70b", gpu="h100",
                                                            num_gpus=4), "peft", "prompt_tuning",
             {"method.soft-prompt-many-simple-tasks": "arxiv.org/abs/2104.08691"}),
    # -- hardware (precision by capability; memory compromises)
    Scenario("70B on one H100 goes 4-bit", dict(examples=5000, model="llama-3.1-70b", gpu="h100"), "peft", "qlora",
             {"memory.quantized-fallback": "5.1 A Decision Framework"},
             settings={"training.hyperparameters.method.compute_dtype": "bfloat16"}),
    Scenario("8B on a T4 computes in float16", dict(examples=3000, model="llama-3.1-8b", gpu="t4"), "peft", "qlora",
             {"training.quantized-compute-fp16": "QLoRA: Extreme Efficiency"},
             settings={"training.hyperparameters.method.compute_dtype": "float16", "training.precision": "fp16"},
             never_says=("bfloat16",)),
    Scenario("8B on a CPU", dict(examples=3000, model="llama-3.1-8b", gpu="cpu", gpu_memory_gib=64), "peft", "lora",
             {"training.precision-cpu": "huggingface.co/docs/transformers/perf_train_cpu",
              "method.needs-cuda": "bitsandbytes"},
             settings={"training.precision": "fp32"},
             never_says=("CUDA context", "({gpu})")),
    Scenario("gpt2 on a T4 has no bf16", dict(task="generation", examples=20000, model="gpt2", gpu="t4"),
             "full_finetune", "full", {"training.precision-fp16": "arxiv.org/abs/1710.03740"},
             settings={"training.precision": "fp16"}),
    Scenario("effective batch is global over 4 GPUs", dict(examples=3000, model="llama-3.1-8b", gpu="rtx4090",
                                                           num_gpus=4), "peft", "lora",
             {"training.effective-batch": "Batch Size Considerations"}),
    Scenario("no --gpu given", dict(examples=3000), "peft", "lora", {"method.lora-default": "000_df4a6b7376d2b11b"},
             says=("No --gpu given: planned for a10g (",)),
    # (At 4k and 8k LoRA itself fits 24 GiB once the fused loss drops the 128K-vocabulary logits.)
    Scenario("12k sequences keep their length with QLoRA", dict(task="generation", examples=3000, seq_len=12288,
                                                                model="llama-3.1-8b", gpu="rtx4090"),
             "peft", "qlora", {"memory.quantized-fallback": "5.1 A Decision Framework"},
             settings={"training.hyperparameters.seq_len": 12288}, absent=("memory.shorter-sequences",)),
    Scenario("24k sequences: the least cut, said with numbers", dict(task="generation", examples=3000,
                                                                     seq_len=24576, model="llama-3.1-8b",
                                                                     gpu="rtx4090"),
             "peft", "qlora", {"memory.shorter-sequences": "huggingface.co/docs/transformers/pad_truncation"},
             settings={"training.hyperparameters.seq_len": 12288},
             says=("Does not fit at the --seq-len you asked (24576 tokens)", "cut to 12288 tokens")),
    # -- data files: the split the plan promises is one execute can make
    Scenario("400 Banking77-like rows with rare intents", dict(model="all-minilm-l6-v2", gpu="cpu"), "full_finetune",
             ("full", "freeze"), {"data.kfold-rare-labels": "StratifiedKFold"},
             settings={"training.data.kfold": None, "training.data.stratify": True,
                       "training.data.validation_ratio": 0.2}, data=banking_400_rare),
    Scenario("616 rows, 8 per intent: stratified 5-fold", dict(model="all-minilm-l6-v2", gpu="cpu"), "full_finetune",
             ("full", "freeze"), {"data.kfold-small": "4.2 Overfitting"},
             settings={"training.data.kfold": 5, "training.data.stratify": True}, data=banking_616_even),
    Scenario("150 rows over 77 intents", dict(model="all-minilm-l6-v2", gpu="cpu"), "full_finetune",
             ("full", "freeze"), {"data.stratify": "Train/Validation Split"},
             settings={"training.data.stratify": False}, says=("training.data.stratify = false",),
             data=banking_150),
    Scenario("260 rows over 77 intents: a larger hold-out", dict(model="all-minilm-l6-v2", gpu="cpu"),
             "full_finetune", "full", {"data.kfold-rare-labels": "StratifiedKFold"},
             settings={"training.data.validation_ratio": 0.3, "training.data.stratify": True,
                       "training.data.kfold": None},
             says=("training.data.validation_ratio = 0.3",), data=banking_260),
]


def test_panel_is_large_and_names_are_unique():
    assert len(PANEL) >= 40
    assert len({scenario.name for scenario in PANEL}) == len(PANEL)


def test_panel_covers_every_profile_input():
    given = {key for scenario in PANEL for key in scenario.profile} | {"data"}
    assert set(Profile.model_fields) - given <= {"method", "batch_size", "price_per_hour"}
    tasks_covered = {scenario.profile.get("task", "instruction") for scenario in PANEL}
    assert {"chat", "code", "preference", "classification", "qa", "reasoning"} <= tasks_covered


@pytest.mark.parametrize("scenario", PANEL, ids=[scenario.name for scenario in PANEL])
def test_expert_signs_off(scenario: Scenario):
    plan = scenario.plan()
    fired = {entry.rule: entry for entry in plan.rationale}
    assert plan.recommendation.approach == scenario.approach, list(fired)
    methods = scenario.method if isinstance(scenario.method, tuple) else (scenario.method,)
    assert plan.recommendation.method in methods, list(fired)
    for rule_id, cited in scenario.cites.items():
        assert rule_id in fired, f"{rule_id} did not fire; fired {list(fired)}"
        assert cited in fired[rule_id].source, f"{rule_id} cites {fired[rule_id].source}"
    for rule_id in scenario.absent:
        assert rule_id not in fired, f"{rule_id} fired: {fired[rule_id].message}"
    document = json.loads(plan.model_dump_json())
    for path, expected in scenario.settings.items():
        value = dig(document, path)
        if isinstance(expected, tuple):
            assert expected[0] <= value <= expected[1], f"{path} = {value}, expected {expected}"
        else:
            assert value == expected, f"{path} = {value}, expected {expected}"
    if scenario.complements is not None:
        assert plan.recommendation.complements == scenario.complements
    text = plan_text(plan)
    for phrase in scenario.says:
        assert phrase in text, f"the plan does not say {phrase!r}"
    for phrase in scenario.never_says:
        assert phrase not in text, f"the plan says {phrase!r}"


def test_effective_batch_is_global_over_gpus():
    plan = next(s for s in PANEL if s.name == "effective batch is global over 4 GPUs").plan()
    hp = plan.training.hyperparameters
    assert hp.batch_size * hp.gradient_accumulation_steps * plan.profile.num_gpus == 16


@pytest.mark.slow
def test_nothing_fits_offers_bigger_hardware_and_a_smaller_model_without_rag_for_behaviour():
    plan = make_plan(Profile(examples=5000, model="llama-3.1-70b", gpu="t4"))
    assert plan.recommendation.method is None
    text = plan_text(plan)
    assert "use RAG" not in text and "A smaller model that fits this hardware" in text
    assert "even at its smallest" in plan.recommendation.summary


@pytest.mark.parametrize("scenario", [s for s in PANEL if s.data is not None], ids=lambda s: s.name)
def test_the_split_the_plan_promises_is_one_the_splitter_makes(scenario: Scenario):
    import csv

    from advisor.data.split import split_records

    plan = scenario.plan()
    with open(scenario.data(), newline="") as handle:
        records = list(csv.DictReader(handle))
    data = plan.training.data
    split = split_records(records, validation_ratio=data.validation_ratio, test_ratio=data.test_ratio,
                          stratify_by="label" if data.stratify else None, kfold=data.kfold, seed=data.seed)
    assert split.folds if data.kfold else split.splits["validation"]
