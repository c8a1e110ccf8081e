"""The public data models: what a user describes (Profile) and what we answer (Plan).

The CLI, the TUI, the rule engine and the backends all speak these models;
their JSON is the contract in CONTRACT.md (`schema_version` 1). Every model
forbids unknown keys so a typo is an error with a "did you mean", not a
silently ignored setting.

The modules that define pydantic models leave out `from __future__ import annotations`:
with it, pydantic compiles each annotation string again when it builds the class
(about 30 M of the ~1,090 M instructions of a cold `advisor plan`). Empty list and dict
defaults are written as values, which pydantic copies for each instance: a default_factory
costs an inspect.signature of the factory as the class is built (19 M more).
"""

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .quantities import about_hours

SCHEMA_VERSION = 1

Goal = Literal["knowledge", "behavior"]
Task = Literal[
    "classification", "ner", "qa", "generation", "instruction",
    "reasoning", "domain-adaptation", "vision-language",
    "chat", "code", "preference", "summarization", "extraction",
]
Quality = Literal["low", "medium", "high"]
Latency = Literal["strict", "moderate", "relaxed"]
Approach = Literal["prompting", "rag", "peft", "full_finetune"]
Precision = Literal["bf16", "mixed", "fp16", "fp32"]
#: hybrid: FSDP2 hybrid sharding, sharded within each node and replicated across nodes.
Sharding = Literal["none", "ddp", "fsdp", "hybrid", "zero2", "zero3"]
#: What the sharding engine keeps in host memory: nothing, the optimizer states, or parameters too.
Offload = Literal["none", "optimizer", "parameters"]
Optimizer = Literal["adamw", "adamw_8bit", "paged_adamw_8bit"]

#: Upper bounds of the numbers a person gives: far above any real run, low enough that the
#: estimator's arithmetic stays finite. pydantic's message names the limit.
MAX_EXAMPLES = 10**12
MAX_CORPUS_TOKENS = 10**15
MAX_SEQ_LEN = 2**20
MAX_BATCH_SIZE = 2**16
MAX_GPUS = 4096
MAX_NODES = 1024
MAX_TASKS = 10**6
MAX_GPU_MEMORY_GIB = 10_000.0
MAX_PRICE_PER_HOUR = 1_000_000.0
MAX_EPOCHS = 10_000.0
MAX_STEPS = 2**16
MAX_RUN_STEPS = 10**9  # --max-steps / --save-steps: more optimizer steps than any run takes
MAX_SEED = 2**32 - 1  # numpy and torch seeds are unsigned 32-bit
MAX_FOLDS = 100


class StrictModel(BaseModel):
    """Base of every input/output model: unknown keys, infinities and NaN are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _numbers_and_booleans_stay_apart(cls, data: Any) -> Any:
        """JSON `true` is not the number 1, nor 1 a yes: pydantic's lax mode would convert both.

        One check of a model's input rather than a validator on every field: pydantic wraps each field of each
        of ~50 classes in its own validator at import (22 M of the ~1,090 M instructions of a cold `plan`)."""
        if not isinstance(data, dict):
            return data
        kinds = _value_kinds(cls)
        errors = [{"type": "value_error", "loc": (key,), "input": value, "ctx": {"error": ValueError(problem)}}
                  for key, value in data.items()
                  if (problem := _kind_problem(kinds.get(key), value)) is not None]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


def _kind_problem(kind: Optional[str], value: Any) -> Optional[str]:
    if kind == "number" and isinstance(value, bool):
        return "expected a number, got a true/false value"
    if kind == "bool" and not isinstance(value, bool) and value is not None:
        return "expected true or false"
    return None


#: Per model class, its number and true/false fields under their names and aliases: read once, since the check runs
#: for every validation (measured: 27 M of the 1,313 M instructions of a cold 8B plan).
_KINDS: dict[type, dict[str, str]] = {}


def _value_kinds(model: type[BaseModel]) -> dict[str, str]:
    kinds = _KINDS.get(model)
    if kinds is None:
        kinds = _KINDS[model] = {}
        for name, field in model.model_fields.items():
            if _holds(field.annotation, (int, float, bool)):
                kind = "number" if _holds(field.annotation, (int, float)) else "bool"
                kinds.update({key: kind for key in (name, field.alias) if key})
    return kinds


def _holds(annotation: Any, kinds: tuple[type, ...]) -> bool:
    """The annotation is one of `kinds`, or a union (Optional) holding one."""
    import types
    import typing

    if annotation in kinds:
        return True
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return is_union and any(arg in kinds for arg in typing.get_args(annotation))


class Profile(StrictModel):
    """What the user wants to do and with what: the planner's only input."""

    goal: Goal = Field("behavior", description="knowledge injection vs behaviour alignment (style, format, task skill)")
    task: Task = Field("instruction", description="task family")
    examples: int = Field(1000, ge=0, le=MAX_EXAMPLES, description="labelled examples available")
    quality: Quality = Field("medium", description="data quality")
    dynamic_knowledge: bool = Field(False, description="the facts change often (news, prices, catalogue)")
    one_off: bool = Field(False, description="a one-off or rarely repeated task")
    model: str = Field("llama-3.2-1b", description="model catalog id, or a local directory with a config.json")
    gpu: str = Field("a10g", description="accelerator catalog id per device (cpu for none)")
    gpu_memory_gib: Optional[float] = Field(None, gt=0, le=MAX_GPU_MEMORY_GIB, description="overrides the catalog's memory per device")
    num_gpus: int = Field(1, ge=1, le=MAX_GPUS, description="devices on the machine")
    num_nodes: int = Field(1, ge=1, le=MAX_NODES, description="machines, each with num_gpus devices")
    latency: Latency = Field("moderate", description="strict = no added inference latency allowed")
    tasks: int = Field(1, ge=1, le=MAX_TASKS, description="tasks/variants served from one base model")
    seq_len: Optional[int] = Field(None, ge=8, le=MAX_SEQ_LEN, description="training sequence length (default chosen by the plan)")
    batch_size: Optional[int] = Field(None, ge=1, le=MAX_BATCH_SIZE, description="micro-batch size per device (default chosen by the plan)")
    method: Optional[str] = Field(None, description="force a method plugin; the plan still estimates and warns")
    data: Optional[str] = Field(None, description="a data file; its validation report fills examples, task and quality")
    price_per_hour: Optional[float] = Field(None, ge=0, le=MAX_PRICE_PER_HOUR, description="price of one device-hour, for a cost estimate")
    # -- added by issue 17; every one has a default, so older profiles read as before
    goals: list[Goal] = Field([], description="several goals at once (goal is the first when given)")
    keep_general_ability: bool = Field(False, description="the tuned model must keep its general ability")
    continual_updates: bool = Field(False, description="the model is updated again and again (e.g. monthly)")
    corpus_tokens: Optional[int] = Field(None, ge=0, le=MAX_CORPUS_TOKENS, description="unlabelled domain corpus, in tokens, "
                                         "for continued pre-training before task tuning")
    language: str = Field("en", description="main language of the data (ISO 639-1 code)")

    def all_goals(self) -> list[str]:
        """goal and goals together, in order, without repeats."""
        named = ([self.goal] if "goal" in self.model_fields_set or not self.goals else []) + list(self.goals)
        return list(dict.fromkeys(named))

    @field_validator("model", "gpu")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("language")
    @classmethod
    def _language_code(cls, value: str) -> str:
        code = value.strip().lower()
        if not (2 <= len(code) <= 3 and code.isalpha()):
            raise ValueError("must be an ISO 639 language code such as en, de or zh")
        return code


def validate_profile(values: dict[str, Any]) -> Profile:
    """A Profile from user-given keys, each valid and none contradicting another; a mistake becomes one line
    (UserError) with a did-you-mean. `advisor plan`, its --profile file and the wizard's answers all pass here."""
    from .errors import UserError

    profile = validate_values(values)
    conflict = conflicting_keys(profile)
    if conflict:
        raise UserError(conflict)
    return profile


def validate_values(values: dict[str, Any]) -> Profile:
    """A Profile from user-given keys, each checked on its own (a wizard field checks its value as it is typed)."""
    from pydantic import ValidationError

    from .errors import UserError, describe_validation_error

    try:
        return Profile.model_validate(values)
    except ValidationError as error:
        raise UserError(describe_validation_error(error, Profile))


def conflicting_keys(profile: Profile) -> Optional[str]:
    """Why two things the person said cannot both hold, naming both flags, or None.

    Checked where the person's input is validated and not in the model itself: an executed plan.json keeps
    whatever profile it was given (a test plan runs two CPU processes with gloo).
    """
    if profile.one_off and profile.continual_updates:
        return ("--one-off and --continual-updates contradict each other: a one-off task is run once or rarely and "
                "does not repay a fine-tune, while continual updates retrain the model again and again; keep the "
                "one that holds")
    if profile.gpu_memory_gib is not None and "gpu" not in profile.model_fields_set:
        default = Profile.model_fields["gpu"].default
        return (f"--gpu-memory-gib {profile.gpu_memory_gib:g} sets the memory of the device --gpu names, and no --gpu "
                f"was given: the plan would take the default {default}'s speed and bf16 and 4-bit support with "
                f"{profile.gpu_memory_gib:g} GiB; name your device too (--gpu, `advisor gpus` lists them)")
    if (profile.num_gpus > 1 or profile.num_nodes > 1) and _is_cpu(profile.gpu):
        spread = " ".join(f"{flag} {value}" for flag, value in (("--num-gpus", profile.num_gpus),
                                                                ("--num-nodes", profile.num_nodes)) if value > 1)
        return (f"--gpu cpu with {spread}: a CPU-only plan is one training process on one machine; more processes "
                "would share the same cores and memory rather than add devices, and the estimator prices devices "
                "linked at GPU speeds; drop --num-gpus and --num-nodes, or name your GPUs (`advisor gpus`)")
    return None


def _is_cpu(gpu: str) -> bool:
    """`gpu` names the catalog's CPU entry (an unknown name is the planner's to refuse)."""
    from .errors import UserError
    from .knowledge_base import resolve_gpu

    try:
        return resolve_gpu(gpu).id == "cpu"
    except UserError:
        return False


class Rationale(StrictModel):
    """One rule that fired: why the plan says what it says, with its source."""

    rule: str
    message: str
    source: str


class Recommendation(StrictModel):
    approach: Approach
    method: Optional[str] = None
    complements: list[str] = []
    summary: str


class MemoryEstimate(StrictModel):
    """Peak GPU memory of one training step, in GiB (2^30 bytes)."""

    peak_gib: float = Field(description="predicts torch.cuda.max_memory_allocated() per device")
    per_device_gib: float
    breakdown: dict[str, float] = Field({}, description="GiB per part, summing to peak_gib")
    overhead_gib: float = Field(0.0, description="CUDA context and allocator slack, not in peak_gib")


class StorageEstimate(StrictModel):
    per_task_mb: float = Field(description="what one task adds on disk: an adapter, or a full checkpoint")
    total_mb: float = Field(description="per_task_mb x tasks, plus the shared base when adapters are used")
    base_mb: float = 0.0
    full_checkpoint_mb: float = 0.0
    merged: bool = False


class TimeEstimate(StrictModel):
    tokens_per_s: float = Field(description="training tokens per second, all devices together")
    train_tokens: int
    hours: float
    cost: Optional[float] = None
    hours_band: Optional[tuple[float, float]] = Field(
        None, description="p10-p90 of the run time, from the estimator's held-out errors"
    )
    cost_band: Optional[tuple[float, float]] = Field(None, description="p10-p90 of the cost, as hours_band")
    kfold: Optional[int] = Field(
        None, description="k-fold cross-validation: train_tokens, hours and cost are the whole run's, its k fold models "
        "(each on (k-1)/k of the data) and the final model on all of it")

    def hours_text(self, digits: int = 2) -> str:
        """'~1.25 h', or under k-fold '5 folds + final model: ~1.25 h in all'."""
        hours = about_hours(self.hours, digits)
        return f"{self.kfold} folds + final model: {hours} in all" if self.kfold else hours


class Estimate(StrictModel):
    """The estimator's answer for one (model, method, shape, hardware)."""

    memory: MemoryEstimate
    device_memory_gib: Optional[float] = None
    fits: Optional[bool] = None
    storage: Optional[StorageEstimate] = None
    time: Optional[TimeEstimate] = None
    trainable_params: int = 0
    total_params: int = 0
    config: dict[str, Any] = Field({}, description="the shape and settings estimated")


class Alternative(StrictModel):
    approach: Approach
    method: Optional[str] = None
    fits: Optional[bool] = None
    peak_gib: Optional[float] = None
    why_not: str = ""
    config: dict[str, Any] = {}


class DataHandling(StrictModel):
    validation_ratio: float = Field(0.2, ge=0, lt=1)
    test_ratio: float = Field(0.0, ge=0, lt=1)
    kfold: Optional[int] = Field(None, ge=2, le=MAX_FOLDS)
    stratify: bool = False
    seed: int = Field(42, ge=0, le=MAX_SEED)
    seq_len: Optional[int] = Field(None, ge=1, le=MAX_SEQ_LEN)
    long_prompts: Literal["refuse", "drop"] = Field(
        "refuse",
        description="records whose prompt alone fills seq_len, so truncation leaves no response to learn from: "
        "refuse the run (the default), or leave them out of training with a warning that names them",
    )


class ParamGroup(StrictModel):
    """One optimizer parameter group with its own learning rate, and the rule that set it."""

    name: Literal["new", "pretrained"] = Field(
        description="new: parameters the run initialises (task head, adapter/LoRA weights, soft prompts); "
        "pretrained: trainable weights that came with the base model"
    )
    learning_rate: float = Field(gt=0, le=1)
    rule: str = Field(description="id of the rule that chose this rate")


class TrainingHyperparameters(StrictModel):
    """Everything the backend needs to configure the Trainer; chosen by the rules."""

    learning_rate: float = Field(gt=0, le=1, description="rate of the pretrained group (or the only group)")
    param_groups: list[ParamGroup] = []
    epochs: float = Field(3.0, gt=0, le=MAX_EPOCHS)
    batch_size: int = Field(8, ge=1, le=MAX_BATCH_SIZE, description="micro-batch per device")
    gradient_accumulation_steps: int = Field(1, ge=1, le=MAX_STEPS)
    seq_len: int = Field(512, ge=8, le=MAX_SEQ_LEN)
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of steps (TrainingArguments.warmup_steps takes it)")
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(0.0, ge=0, le=1)
    max_grad_norm: float = Field(1.0, gt=0, le=1e6)
    gradient_checkpointing: bool = False
    optimizer: Optimizer = "adamw"
    early_stopping_patience: Optional[int] = Field(2, ge=1, le=MAX_STEPS, description="evaluations without improvement; null = off")
    eval_metric: str = Field("loss", description="what early stopping and best-checkpoint selection watch")
    method: dict[str, Any] = Field({}, description="the method plugin's own hyperparameters")
    packing: Optional[bool] = Field(
        None, description="causal-LM SFT: each micro-batch as one padding-free row, examples kept apart "
        "(position ids restart, no attention across examples); null: on wherever the method and model allow it"
    )
    fused_cross_entropy: Optional[bool] = Field(
        None, description="causal LM: the LM head and cross-entropy without the full logits (liger-kernel's fused "
        "linear cross-entropy on CUDA, else a chunked loss); the plan sets it where it makes the run fit or saves "
        "over 20% of the peak; null: the plan has not decided, the standard loss"
    )


class Training(StrictModel):
    method: str
    hyperparameters: TrainingHyperparameters
    precision: Precision = "bf16"
    data: DataHandling = DataHandling()


class PlanStage(StrictModel):
    """One stage of a multi-stage plan (continued pre-training, then task tuning), in order."""

    name: str
    purpose: str
    method: Optional[str] = None
    examples: int = Field(0, ge=0, description="examples (or corpus sequences) this stage trains on")
    estimate: Optional[Estimate] = None
    training: Optional[Training] = None
    rationale: list[Rationale] = Field(
        [], description="the rules behind this stage's method and settings, where they are not "
        "the plan's own (the task-tuning stage is the plan's recommendation, explained by its rationale)")
    warnings: list[str] = Field([], description="what to watch for in this stage")


class Plan(StrictModel):
    """`advisor plan --json`: the recommendation, why, what it costs, how to train."""

    schema_version: Literal[1] = SCHEMA_VERSION
    profile: Profile
    recommendation: Recommendation
    rationale: list[Rationale] = []
    estimate: Optional[Estimate] = None
    alternatives: list[Alternative] = []
    training: Optional[Training] = None
    warnings: list[str] = []
    stages: list[PlanStage] = Field([], description="ordered stages; empty for a one-stage plan")
    assumptions: list[str] = Field([], description="what the plan assumed that was not given")
