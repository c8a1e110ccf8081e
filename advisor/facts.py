"""Facts: everything a rule may test, derived once from the profile and the catalogs.

Rules name facts in their `when` tables; the loader refuses a name that is not
a field here. The planner fills the method facts after it has chosen one.
"""

from typing import Any, NamedTuple, Optional

from .estimate.sharding import hardware_label
from .knowledge_base import ModelEntry, resolve_gpu, resolve_model, tasks
from .methods import Method
from .models import Profile


class Facts(NamedTuple):
    """What the rules test. Derived by advisor's own code from what is validated already (the Profile, the
    catalogs), so a NamedTuple, changed with `_replace`: nothing to validate twice, and its class costs a cold
    plan next to nothing, where the pydantic model took 25 M of ~1,000 M instructions (a dataclass, which
    compiles its __init__ and __eq__, took as long as pydantic for these hundred-odd fields)."""

    # -- always given (derive_facts): what the person told us and what the catalogs say of it
    goal: str
    task: str
    examples: int
    quality: str
    dynamic_knowledge: bool
    one_off: bool
    latency: str
    tasks: int
    num_gpus: int
    model: str
    gpu: str
    params_b: float
    model_kind: str
    gpu_cuda: bool
    device_memory_gib: float
    task_min_examples: int
    task_recommended_examples: int
    task_optimal_examples: int
    task_size_table: str
    task_size_row: str
    complexity: str
    below_minimum: bool
    below_recommended: bool
    head: str
    gpu_bf16: bool
    # -- what the person told us
    goals: tuple[str, ...] = ()
    knowledge_goal: bool = False
    behavior_goal: bool = False
    num_nodes: int = 1
    hardware: str = ""  # "8 GPUs", "2 nodes x 8 GPUs"
    gpu_given: bool = True
    keep_general_ability: bool = False
    continual_updates: bool = False
    corpus_tokens: int = 0
    language: str = "en"
    # -- derived from what the person told us
    effective_examples: int = 0
    examples_note: str = ""
    knowledge_changes: bool = False
    knowledge_scale: str = "small"
    knowledge_injection: bool = False  # static facts at scale, taught to the model by the fine-tune
    two_stage: bool = False
    corpus_only: bool = False
    corpus_stage: bool = False  # this plan, or this stage of it, trains on the corpus: examples are its sequences
    # -- a corpus-only plan: the labelled examples given beside the corpus, too few to tune the task on
    labelled_examples: int = 0
    labelled_note: str = ""  # "30 examples", as examples_note says it
    labelled_task: str = ""
    labelled_min_examples: int = 0
    # -- filled while the approach rules run: what an earlier approach rule decided (prompting / rag / fine_tune)
    decided_approach: Optional[str] = None
    # -- derived from the catalogs
    model_family: str = ""  # the architecture's family (llama, gemma3, ...)
    num_layers: int = 0
    gpu_name: str = ""
    gpu_fp8: bool = False
    gpu_bitsandbytes: bool = True
    # -- from a data file, when one was given
    data_given: bool = False
    data_labels: Optional[int] = None
    data_min_label_count: Optional[int] = None
    # -- filled in once a method is chosen
    approach: Optional[str] = None
    method: Optional[str] = None
    method_family: Optional[str] = None
    method_mergeable: Optional[bool] = None
    method_quantized: Optional[bool] = None
    method_capacity: Optional[int] = None
    method_settings: tuple[str, ...] = ()
    fit_changes: tuple[str, ...] = ()
    seq_len_asked: Optional[int] = None
    seq_len_fit: Optional[int] = None
    seq_len_origin: str = "the requested length"
    # -- the data's prompts against the plan's seq_len (a data file with prompts given, and a fit found)
    data_records: Optional[int] = None
    token_count: str = ""  # how the data's tokens were counted, in words
    prompt_max: Optional[int] = None
    prompts_filling: Optional[int] = None  # records whose prompt alone takes seq_len_fit tokens or more
    prompts_filling_share: Optional[float] = None
    records_kept: Optional[int] = None  # data_records without those
    long_prompts: Optional[str] = None  # the plan's training.data.long_prompts, where some prompt fills seq_len
    seq_len_keepers: str = "No other method keeps that length."  # or which do, and why the chosen comes first
    preferred_fit: str = "The preferred method does not fit"  # how the preferred method falls short, when not chosen
    effective_batch: Optional[int] = None  # over all devices, as the configuration that fits has it
    effective_batch_tokens: Optional[int] = None  # the same in tokens (sequences x seq_len)
    effective_batch_layout: str = ""  # "micro-batch 1 x 1 accumulation step x 32 devices"
    effective_batch_floor: str = ""  # why it is above the rules' setting, or ""
    sharding_trade_off: str = ""  # the other layout that fits several nodes, with both speeds
    # -- a --seq-len above the model's context: the plan asks for the context instead
    seq_len_requested: Optional[int] = None  # --seq-len as given
    model_context: int = 0  # the model's max_position_embeddings
    seq_len_capped: bool = False
    # -- a --batch-size whose micro-batch does not fit: the plan runs a smaller one with accumulation
    batch_size_cut: bool = False
    batch_size_asked: Optional[int] = None
    batch_size_asked_gib: Optional[float] = None  # what that micro-batch needs per device, overhead included
    # -- under --method: what the plan would do without it, and what the forced method costs
    method_forced: bool = False
    unforced_advice: str = ""  # "Drop --method and the plan picks lora (7.9 GiB peak per device).", or ""
    fitting_methods: str = ""  # the other methods that fit where the forced one does not, with their peak memory
    storage_per_task: str = ""  # "282.2 GB"
    storage_total: str = ""  # over all tasks: "11.3 TB"
    # -- how the chosen settings train: k-fold (0: none), the epochs, and where early stopping applies
    kfold: int = 0
    epochs: Optional[float] = None
    early_stopping: str = "Early stopping on the validation split ends it sooner."
    # -- how long the chosen configuration trains (run_time.py), where it has a time estimate
    run_hours: Optional[float] = None  # the whole run: every fold and the final model under k-fold
    run_limit_hours: Optional[float] = None  # the seeds' longest stage of this kind
    run_time: str = ""  # "~813 h (33.9 days) on cpu"
    run_too_long: bool = False
    faster_options: str = ""  # what the plan finds under the limit, or that it finds nothing
    one_node_faster: bool = False  # several nodes, and one node of the same GPUs fits and is faster
    node_speeds: str = ""
    fast_network_speed: str = ""


#: How much a labelled example counts for, by quality. 002 § Data Quality Principles: "500 excellent
#: examples > 5,000 mediocre ones"; a noisy example is worth at most a fifth of a clean one here.
QUALITY_WEIGHT = {"high": 1.0, "medium": 1.0, "low": 0.2}
#: Unlabelled corpus tokens worth one labelled example when sizing knowledge (a 500-token passage).
TOKENS_PER_EXAMPLE = 500
#: Knowledge evidence (quality-weighted examples, or corpus passages) at which a static corpus is
#: "medium" and "large": 003 § 1.2 (knowledge injection needs large data), 000 § Domain Adaptation
#: (100K-1M documents).
KNOWLEDGE_SCALE = ((100_000, "large"), (10_000, "medium"), (0, "small"))
#: An unlabelled corpus from this many tokens gets its own continued pre-training stage before task tuning:
#: 000 § Domain Adaptation asks for 100K-1M documents, and 100K passages of TOKENS_PER_EXAMPLE tokens is
#: also where static knowledge becomes "large" (KNOWLEDGE_SCALE), so one corpus size grades both: below
#: it, a knowledge corpus is retrieved (RAG), not pre-trained on.
CPT_MIN_TOKENS = KNOWLEDGE_SCALE[0][0] * TOKENS_PER_EXAMPLE
#: Quality-weighted examples a task needs to be tuned on: 002 § Use Cases for Fine-tuning counts tasks with
#: "<100 quality examples" among fine-tuning's poor candidates (approach.too-few-examples). Fewer beside a
#: corpus from CPT_MIN_TOKENS make a corpus-only plan, as none do; more, a corpus stage then task tuning.
TASK_TUNING_MIN_EXAMPLES = 100


def quality_weighted(examples: int, quality: str) -> int:
    return int(examples * QUALITY_WEIGHT[quality])


def corpus_only_plan(profile: Profile) -> bool:
    """The plan is continued pre-training on the corpus alone: a corpus large enough for a pre-training stage,
    and too few labelled examples to tune the task on after it."""
    return ((profile.corpus_tokens or 0) >= CPT_MIN_TOKENS
            and quality_weighted(profile.examples, profile.quality) < TASK_TUNING_MIN_EXAMPLES)


def examples_note(examples: int, quality: str, effective: int) -> str:
    """'150 low-quality examples (worth about 30 clean ones)', or just '3000 examples'."""
    if quality == "low" and examples:
        return f"{examples} low-quality examples (worth about {effective} clean ones)"
    return f"{examples} examples"


def derive_facts(profile: Profile, model: Optional[ModelEntry] = None, data_labels: Optional[int] = None,
                 data_min_label_count: Optional[int] = None) -> Facts:
    """Facts for `profile` (UserError for an unknown model or GPU)."""
    model = model or resolve_model(profile.model)
    gpu = resolve_gpu(profile.gpu)
    task = tasks()[profile.task]
    goals = profile.all_goals()
    effective = quality_weighted(profile.examples, profile.quality)
    corpus = profile.corpus_tokens or 0
    evidence = max(effective, corpus // TOKENS_PER_EXAMPLE)
    scale = next(name for floor, name in KNOWLEDGE_SCALE if evidence >= floor)
    knowledge_changes = profile.dynamic_knowledge or (profile.continual_updates and "knowledge" in goals)
    return Facts(
        goal=goals[0], goals=tuple(goals), knowledge_goal="knowledge" in goals, behavior_goal="behavior" in goals,
        task=profile.task, examples=profile.examples, quality=profile.quality,
        dynamic_knowledge=profile.dynamic_knowledge, one_off=profile.one_off, latency=profile.latency,
        tasks=profile.tasks, num_gpus=profile.num_gpus, num_nodes=profile.num_nodes,
        hardware=hardware_label(profile.num_gpus, profile.num_nodes), model=profile.model, gpu=profile.gpu,
        gpu_given="gpu" in profile.model_fields_set,
        model_family=model.architecture.family,
        keep_general_ability=profile.keep_general_ability, continual_updates=profile.continual_updates,
        corpus_tokens=corpus, language=profile.language,
        effective_examples=effective, examples_note=examples_note(profile.examples, profile.quality, effective),
        knowledge_changes=knowledge_changes, knowledge_scale=scale,
        knowledge_injection="knowledge" in goals and not knowledge_changes and scale == "large",
        two_stage=corpus >= CPT_MIN_TOKENS and effective >= TASK_TUNING_MIN_EXAMPLES,
        params_b=model.architecture.total_params() / 1e9,
        model_kind=model.architecture.kind, num_layers=model.architecture.num_layers, gpu_name=gpu.name,
        gpu_cuda=gpu.cuda, gpu_bf16=gpu.bf16, gpu_fp8=gpu.fp8, gpu_bitsandbytes=gpu.bitsandbytes,
        device_memory_gib=profile.gpu_memory_gib or gpu.memory_gib,
        task_min_examples=task.min_examples, task_recommended_examples=task.recommended_examples,
        task_optimal_examples=task.optimal_examples, task_size_table=task.size_table, task_size_row=task.size_row,
        complexity=task.complexity,
        below_minimum=profile.examples < task.min_examples,
        below_recommended=task.min_examples <= profile.examples < task.recommended_examples,
        head="classification" if profile.task == "classification" else "lm",
        seq_len_requested=profile.seq_len, model_context=model.architecture.max_position_embeddings,
        seq_len_capped=(profile.seq_len or 0) > model.architecture.max_position_embeddings,
        method_forced=profile.method is not None,
        data_given=profile.data is not None, data_labels=data_labels, data_min_label_count=data_min_label_count,
    )


def method_facts(method: Method, fit_changes: list[str]) -> dict[str, Any]:
    """The facts a chosen (or candidate) method adds, for the training, data, memory and risk rules."""
    return {
        "approach": method.approach, "method": method.name, "method_family": method.family,
        "method_mergeable": method.mergeable, "method_quantized": method.quantized,
        "method_capacity": method.capacity, "method_settings": tuple(method.Hyperparameters.model_fields),
        "fit_changes": tuple(fit_changes),
    }


#: The names a rule's `when` may test.
FACT_NAMES = Facts._fields

