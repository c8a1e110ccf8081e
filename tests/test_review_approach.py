"""The expert review's approach, knowledge-injection and citation findings (#3, #11, #13, #14), as scenarios.

Each scenario is a profile and what an expert expects of its plan (approach, method, key settings, the
rules that fire with what they cite, what must not fire or be said), checked as the expert panel checks
its own. `test_every_seed_citation_says_what_its_rule_claims` is the systematic pass over the rules: each
rule that cites a seed section names the passage of that section it rests on.
"""

from __future__ import annotations

import re

import pytest

from advisor import rules
from advisor.models import Profile
from advisor.planner import make_plan
from tests.test_expert_panel import FULL_DECODER_RATES, Scenario, banking_400_rare, bert_base, plan_text
from tests.test_expert_panel import test_expert_signs_off as expert_signs_off
from tests.test_knowledge import SEEDS, section_text

SCENARIOS = [
    # -- #3: one corpus size grades knowledge and pre-training alike (50M tokens = 100K passages of ~500)
    Scenario("a 20M-token knowledge corpus and no examples is retrieved", dict(
        goal="knowledge", examples=0, corpus_tokens=20_000_000, model="qwen3-1.7b", gpu="l4"), "rag", None,
        {"approach.no-examples-knowledge": "Decision Framework", "approach.corpus-below-pretraining": "Domain Adaptation"},
        settings={"stages": []}, absent=("approach.corpus-only", "approach.continued-pretraining"),
        says=("under the ~50M tokens",)),
    Scenario("a 30M-token knowledge corpus beside 2,000 QA examples is retrieved", dict(
        goal="knowledge", task="qa", examples=2000, corpus_tokens=30_000_000, model="qwen3-1.7b", gpu="l4"), "rag", None,
        {"approach.knowledge-mid-scale": "arxiv.org/abs/2312.05934"}, settings={"stages": []},
        absent=("approach.continued-pretraining",), never_says=("continue pre-training on it first",)),
    Scenario("a 60M-token knowledge corpus and no examples is pre-trained on", dict(
        goal="knowledge", task="qa", examples=0, corpus_tokens=60_000_000, model="qwen3-1.7b", gpu="l4"),
        "full_finetune", "full", {"approach.corpus-only": "Domain Adaptation"}, absent=("approach.corpus-below-pretraining",)),
    Scenario("a 50M-token corpus opens a pre-training stage", dict(
        task="qa", examples=5000, corpus_tokens=50_000_000, model="llama-3.2-1b", gpu="a100-80gb"), "peft", "lora",
        {"approach.continued-pretraining": "Domain Adaptation"}, settings={"stages.0.name": "continued-pretraining"}),
    Scenario("a corpus one token short of 50M does not", dict(
        task="qa", examples=5000, corpus_tokens=49_999_999, model="llama-3.2-1b", gpu="a100-80gb"), "peft", "lora",
        {"approach.corpus-below-pretraining": "Domain Adaptation"}, settings={"stages": []},
        absent=("approach.continued-pretraining",)),
    Scenario("changing facts with a large corpus: RAG, and no pre-training note", dict(
        goal="knowledge", task="qa", examples=5000, dynamic_knowledge=True, corpus_tokens=100_000_000), "rag", None,
        {"approach.dynamic-knowledge": "Decision Framework"}, absent=("approach.continued-pretraining",),
        never_says=("two stages",)),
    Scenario("a one-off job with a large corpus: prompting, and no pre-training note", dict(
        one_off=True, examples=5000, corpus_tokens=100_000_000), "prompting", None,
        {"approach.one-off": "Use Cases for Fine-tuning"}, absent=("approach.continued-pretraining",)),
    # -- #11: knowledge injection at scale gets a powerful method and several passes
    Scenario("300k knowledge QA on an H100: full fine-tuning, 3 epochs", dict(
        goal="knowledge", task="qa", examples=300000, model="qwen3-4b", gpu="h100"), "full_finetune", "full",
        {"method.full-knowledge-large-devices": "3.1 Task Performance and Accuracy",
         "training.epochs-knowledge": "Domain Adaptation",
         "data.knowledge-augmentation": "arxiv.org/abs/2309.14316"},
        settings={"training.hyperparameters.epochs": 3,
                  "training.hyperparameters.learning_rate": FULL_DECODER_RATES},
        absent=("training.epochs-llm-sft-huge",), never_says=("more repeats the data it has already learnt",)),
    Scenario("300k knowledge QA on an L4: LoRA at rank 64 with rsLoRA, 3 epochs", dict(
        goal="knowledge", task="qa", examples=300000, model="qwen3-4b", gpu="l4"), "peft", "lora",
        {"training.rank-knowledge": "arxiv.org/abs/2405.09673", "training.epochs-knowledge": "Domain Adaptation"},
        settings={"training.hyperparameters.method.r": 64, "training.hyperparameters.method.use_rslora": True,
                  "training.hyperparameters.epochs": 3},
        absent=("training.rank-standard", "method.full-knowledge-large-devices")),
    Scenario("300k behaviour examples keep one epoch and the task's rank", dict(
        task="qa", examples=300000, model="qwen3-4b", gpu="l4"), "peft", "lora",
        {"training.epochs-llm-sft-huge": "arxiv.org/abs/2307.09288", "training.rank-standard": "LoRA"},
        settings={"training.hyperparameters.epochs": 1, "training.hyperparameters.method.r": 8},
        absent=("training.epochs-knowledge", "training.rank-knowledge", "data.knowledge-augmentation")),
    Scenario("changing facts with a behaviour: retrieval holds the facts, no injection settings", dict(
        goals=["knowledge", "behavior"], task="qa", dynamic_knowledge=True, examples=150000, model="qwen3-4b",
        gpu="l4"), "peft", "lora", {"approach.hybrid-rag": "Decision Framework"},
        settings={"training.hyperparameters.epochs": 1},
        absent=("training.epochs-knowledge", "training.rank-knowledge", "method.full-knowledge-large-devices")),
    # -- #13: every citation says what its rule claims
    Scenario("instruction counts cite the guidelines they come from", dict(examples=2000, gpu="l4"), "peft", "lora",
             {"data.size-guidelines": "Dataset Size Guidelines"}, absent=("data.size-table",),
             says=("'Instruction following' row",)),
    Scenario("chat below its minimum cites the instruction row it follows", dict(task="chat", examples=300, gpu="l4"),
             "peft", "lora", {"data.under-minimum-guidelines": "Dataset Size Guidelines"},
             absent=("data.under-minimum",), says=("chat follows instructions",)),
    Scenario("a full fine-tune below the recommended count is not told PEFT copes", dict(
        examples=2000, model="qwen3-0.6b", gpu="cpu", gpu_memory_gib=32), "full_finetune", "full",
        {"data.under-recommended-full": "Full Fine-tuning"}, absent=("data.under-recommended",),
        never_says=("PEFT copes", "a PEFT method suits that")),
    Scenario("DPO takes the Zephyr recipe's LoRA rate, not a supervised one", dict(
        task="preference", examples=12000, gpu="a100-40gb"), "peft", "dpo",
        {"training.preference-rate": "alignment-handbook"},
        settings={"training.hyperparameters.learning_rate": 5e-6}, absent=("training.method-learning-rate",)),
    Scenario("a BERT full fine-tune in fp16 cites mixed-precision training, not QLoRA", dict(
        task="classification", examples=5000, model=bert_base, gpu="t4"), "full_finetune", "full",
        {"training.precision-fp16": "arxiv.org/abs/1710.03740"},
        settings={"training.precision": "fp16"}, absent=("training.quantized-compute-fp16",),
        never_says=("bnb_4bit_compute_dtype",)),
    # -- #14: no two parts of a plan contradict each other
    Scenario("k-fold without the 80/20 hold-out it replaces", dict(
        task="classification", examples=300, model="llama-3.2-1b", gpu="l4"), "peft", "lora",
        {"data.kfold-small": "4.2 Overfitting"}, settings={"training.data.kfold": 5},
        absent=("data.split-80-20",), never_says=("Hold out 20%",)),
    Scenario("rare labels turn k-fold off and keep the hold-out", dict(model="all-minilm-l6-v2", gpu="cpu"),
             "full_finetune", ("full", "freeze"),
             {"data.split-80-20": "Train/Validation Split", "data.kfold-rare-labels": "StratifiedKFold"},
             settings={"training.data.kfold": None}, data=banking_400_rare),
    Scenario("continual updates of a full fine-tune speak of no adapter", dict(
        examples=8000, continual_updates=True, model="qwen2.5-0.5b", gpu="rtx4090"), "full_finetune", "full",
        {"risk.continual-updates-full": "Continual Learning"}, absent=("risk.continual-updates",),
        never_says=("a fresh or continued adapter",)),
    Scenario("a strict-latency QLoRA plan merges into a 16-bit base", dict(
        examples=2000, model="phi-4", gpu="rtx4090", latency="strict"), "peft", "qlora",
        {"risk.merge-quantized-for-latency": "peft/blob/main/src/peft/tuners/lora/bnb.py"},
        absent=("risk.merge-for-latency",), says=("into a 16-bit base",)),
    Scenario("early stopping is described as execute does it", dict(examples=3000, gpu="a10g"), "peft", "lora",
             {"training.early-stopping": "4.2 Overfitting"}, settings={"training.hyperparameters.early_stopping_patience": 2},
             says=("at every checkpoint",), never_says=("monitored every epoch",)),
    Scenario("keeping general ability lowers the rate the warning asks to keep low", dict(
        examples=150000, quality="high", keep_general_ability=True, model="llama-3.1-8b", gpu="a100-80gb",
        num_gpus=8), "peft", "lora", {"training.keep-general-ability-rate": "Mitigation Strategies"},
        settings={"training.hyperparameters.learning_rate": 1e-4}, absent=("training.method-learning-rate",)),
    Scenario("a QLoRA base on a T4 computes in float16, as the seeds' QLoRA setup", dict(
        examples=3000, model="llama-3.1-8b", gpu="t4"), "peft", "qlora",
        {"training.quantized-compute-fp16": "QLoRA: Extreme Efficiency",
         "training.precision-fp16": "arxiv.org/abs/1710.03740"},
        settings={"training.hyperparameters.method.compute_dtype": "float16"}),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
def test_reviewer_signs_off(scenario: Scenario):
    expert_signs_off(scenario)


def test_a_noisy_behaviour_plan_gives_the_cleaning_advice_once():
    plan = make_plan(Profile(task="classification", examples=100000, quality="low", model="all-minilm-l6-v2",
                             gpu="a10g"))
    assert sum("500 excellent examples" in warning for warning in plan.warnings) == 1
    assert "500 excellent examples" not in next(e.message for e in plan.rationale
                                                if e.rule == "approach.behavior-fine-tune-noisy")


def test_a_single_device_lists_no_sharding_among_the_compromises_it_tried():
    plan = make_plan(Profile(examples=5000, model="llama-3.3-70b"))
    summary = plan.recommendation.summary
    assert summary.startswith("Nothing fits") and "even at its smallest (" in summary
    tried = summary.split("even at its smallest (")[1].split(")")[0]
    assert "sharding" not in tried and "micro-batch 1" in tried


def test_a_full_fine_tune_under_continual_updates_names_no_adapter():
    plan = make_plan(Profile(examples=8000, continual_updates=True, model="qwen2.5-0.5b", gpu="rtx4090"))
    message = next(e.message for e in plan.rationale if e.rule == "risk.continual-updates-full")
    assert "adapter" not in message and "replay" in message


def test_a_prompting_plan_with_a_large_corpus_never_mentions_two_stages():
    plan = make_plan(Profile(one_off=True, examples=5000, corpus_tokens=100_000_000))
    assert "two stages" not in plan_text(plan) and not plan.stages


#: For every rule that cites a seed section: the passage of that section the rule rests on (a regular
#: expression, matched case-insensitively across lines). A new seed-citing rule adds its passage here.
EVIDENCE = {
    "approach.one-off": r"one-off tasks",
    "approach.dynamic-knowledge": r"dynamic information.*static knowledge cutoff",
    "approach.corpus-only": r"domain pre-training.*lower learning rate",
    "approach.corpus-only-few-examples": r"<100 quality examples",
    "training.epochs-corpus": r"Longer training \(multiple epochs\)",
    "method.full-continued-pretraining": r"large dataset is available for continued pre-training",
    "approach.no-examples-knowledge": r"no training data.*knowledge retrieval",
    "approach.no-examples": r"<100 quality examples",
    "approach.no-examples-encoder": r"minimum examples",
    "approach.too-few-examples": r"<100 quality examples",
    "approach.encoder-little-data": r"freeze backbone, train head.*pre-trained features are already good",
    "approach.too-few-examples-knowledge": r"knowledge retrieval",
    "approach.knowledge-needs-scale": r"15 million examples.*insufficient dataset",
    "approach.hybrid-rag": r"not for behavior/style",
    "approach.knowledge-and-behavior": r"knowledge injection.*behavioral alignment",
    "approach.behavior-fine-tune": r"less is more",
    "approach.behavior-fine-tune-noisy": r"500 excellent examples > 5,000 mediocre",
    "approach.knowledge-fine-tune": r"knowledge injection.*more powerful method like lora or.*full fine-tuning",
    "approach.continued-pretraining": r"two-stage fine-tuning.*lower learning rate",
    "approach.corpus-below-pretraining": r"100k-1m documents",
    "approach.corpus-below-pretraining-classifier": r"100k-1m documents",
    "method.preference-pairs": r"ppo/dpo",
    "method.strict-latency": r"zero additional latency.*adapter modules.*increase in inference time",
    "method.many-tasks-storage": r"storing numerous full-sized models is infeasible",
    "method.encoder-freeze": r"freeze backbone, train head",
    "method.full-criteria": r"large dataset \(>100k examples\).*80gb\+ vram",
    "method.full-small-encoder": r"model size is small \(<1b parameters\)",
    "method.full-small-model": r"model size is small \(<1b parameters\)",
    "method.full-knowledge-at-scale": r"knowledge injection.*task is highly complex, full fine-tuning",
    "method.full-knowledge-large-devices":
        r"acquisition of new, intricate knowledge.*fft often maintains a performance advantage.*large dataset",
    "method.lora-default": r"95-99% of full fine-tuning performance with <1% of the parameters",
    "memory.gradient-accumulation": r"use gradient accumulation",
    "memory.quantized-fallback": r"qlora\*\* is the standout choice",
    "memory.smaller-method": r"computational and storage budget",
    "memory.nothing-fits": r"oom errors",
    "memory.forced-misfit": r"oom errors.*reduce batch size, use gradient accumulation, qlora",
    "memory.batch-size-cut": r"memory-limited: use gradient accumulation to simulate larger batches",
    "training.method-learning-rate": r"full fine-tune: 1e-5 to 5e-5.*lora: 1e-4 to 3e-4",
    "training.keep-general-ability-rate": r"lower learning rates",
    "training.new-layer-rate": r"'lr': 1e-3",
    "training.encoder-head-only": r"freeze backbone, train head.*unfreeze last",
    "training.warmup-cosine": r"linear warmup \(10% of total steps\).*cosine decay",
    "training.weight-decay": r"regularization techniques\*\* such as weight decay",
    "training.effective-batch": r"gradient accumulation to simulate larger batches",
    "training.classification-batch": r"larger batches: more stable",
    "training.epochs-small-data": r"epochs\*\* \| 3-10",
    "training.epochs-medium-data": r"epochs\*\* \| 3-10",
    "training.epochs-large-data": r"epochs\*\* \| 3-10",
    "training.epochs-knowledge": r"multiple epochs.*inject domain knowledge",
    "training.early-stopping": r"early stopping.*validation set",
    "training.early-stopping-kfold": r"early stopping.*validation set.*cross-validation.*multiple folds",
    "training.quantized-compute-fp16": r"bnb_4bit_compute_dtype=torch\.float16",
    "training.rank-simple": r"r=4 \| simple tasks",
    "training.rank-standard": r"r=8 \| standard setting",
    "training.rank-complex": r"r=16 \| complex tasks \| near full ft",
    "training.rank-very-complex": r"r=32 \| very complex.*r=64\+ \| diminishing returns",
    "training.small-data-dropout": r"lora_dropout=0\.1 +# higher dropout for small data",
    "training.domain-pretraining-rate": r"lower learning rate",
    "training.after-domain-pretraining": r"even lower learning rate",
    "data.split-80-20": r"80% train, 20% validation",
    "data.split-90-10": r"90% train, 10% validation",
    "data.kfold-small": r"cross-validation",
    "data.stratify": r"stratified for classification",
    "data.size-table": r"question answering \| 1,000 \| 10,000",
    "data.size-guidelines": r"instruction following \| 500-1,000 \| 5,000\+",
    "data.under-minimum": r"minimum examples",
    "data.under-minimum-guidelines": r"minimum examples",
    "data.under-recommended": r"less prone to overfitting.*50-500 examples",
    "data.under-recommended-full": r"requires largest datasets for stability",
    "data.low-quality": r"clean, human-validated outputs",
    "data.check-leakage": r"no overlap \(data leakage\)",
    "risk.forgetting-full": r"mix 10-20%.*smaller learning rate.*early stopping",
    "risk.forgetting-peft": r"lora can still suffer",
    "risk.quantized-slower": r"99\.3% of full 16-bit fine-tuning.*2-3× slower",
    "risk.added-latency": r"adapter modules.*increase in inference time",
    "risk.merge-for-latency": r"zero additional latency",
    "risk.forced-added-latency":
        r"merge the adapter weights.*zero additional latency.*adapter modules.*increase in inference time",
    "risk.forced-full-copies":
        r"complete, standalone copy of the model for every task.*few megabytes.*single copy of the large base model",
    "risk.latency-versus-tasks": r"zero additional latency",
    "risk.adapters-per-task": r"separate lora adapter for each task",
    "risk.keep-general-ability": r"80% new task, 20% old task",
    "risk.continual-updates": r"progressive adapter addition.*memory replay",
    "risk.continual-updates-full": r"elastic weight consolidation.*memory replay",
    "risk.run-too-long": r"1m examples.*duration: 2-3 days on 8. a100",
    "risk.corpus-run-too-long": r"domain adaptation \(1 week\)",
}


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not beside this checkout")
def test_every_seed_citation_says_what_its_rule_claims():
    cited = {rule.id: rule for rule in rules.all_rules() if not rule.source.startswith(rules.REFERENCE_PREFIX)}
    assert set(cited) == set(EVIDENCE), "each seed-citing rule names its passage in EVIDENCE"
    for rule_id, passage in EVIDENCE.items():
        file, headings = rules.parse_source(cited[rule_id].source)
        text = section_text((SEEDS / file).read_text(encoding="utf-8"), headings[-1])
        assert re.search(passage, text, flags=re.I | re.S), f"{rule_id}: {cited[rule_id].source} does not say it"


def test_the_task_counts_are_the_rows_their_table_names():
    """Each task's minimum and recommended counts are in the row of the seed table it names."""
    from advisor.knowledge_base import tasks

    sections = {"000": ("000_df4a6b7376d2b11b.txt", "How Much Data is Needed?"),
                "002": ("002_cb6d472d11844b9e.txt", "Dataset Size Guidelines")}
    if not SEEDS.is_dir():
        pytest.skip("../shared/seeds is not beside this checkout")
    for task in tasks().values():
        file, heading = sections[task.size_table]
        text = section_text((SEEDS / file).read_text(encoding="utf-8"), heading)
        row_name = task.size_row.split(" (")[0]
        row = next((line for line in text.splitlines() if line.startswith(f"| {row_name} |")), None)
        assert row, f"{task.id}: no row {row_name!r} in {file} § {heading}"
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert f"{task.min_examples:,}" == cells[1].split("-")[0], f"{task.id}: minimum {cells[1]}"
        assert f"{task.recommended_examples:,}" == cells[2].rstrip("+"), f"{task.id}: recommended {cells[2]}"
