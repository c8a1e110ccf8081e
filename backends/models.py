"""The backends' own data: what `advisor execute` asks for, and what a run reports.

`advisor/cli/execute.py` builds an `ExecuteRequest`; `local.py` and
`accelerate.py` take it; `artifacts.py` writes `RunMetrics` as metrics.json
and `RunManifest` as run-manifest.json. Pure pydantic: no torch here.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..models import MAX_RUN_STEPS, Plan

Backend = Literal["local", "accelerate"]
#: Line numbers listed for truncated or left-out rows (the count is always complete).
LISTED_LINES = 10


class BackendModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecuteRequest(BackendModel):
    """One `advisor execute` invocation, resolved: absolute paths, the plan already validated."""

    plan: Plan
    plan_path: str = Field(description="the plan file as the user named it (for the resume command)")
    data: str = Field(description="the data file or directory")
    output_dir: str
    resume: bool = False
    overwrite: bool = False
    max_steps: Optional[int] = Field(None, ge=1, le=MAX_RUN_STEPS, description="stop after this many optimizer steps (per model)")
    save_steps: Optional[int] = Field(None, ge=1, le=MAX_RUN_STEPS, description="checkpoint (and evaluate) every N steps")
    backend: Backend = "local"
    dry_run: bool = False
    probe: bool = Field(True, description="the preflight runs one step on the longest micro-batch before training")

    def resume_command(self) -> str:
        """The exact command that continues this run from its last checkpoint."""
        import shlex

        words = ["advisor", "execute", self.plan_path, "--data", self.data, "--output-dir", self.output_dir, "--resume"]
        if self.max_steps:
            words += ["--max-steps", str(self.max_steps)]
        if self.save_steps:
            words += ["--save-steps", str(self.save_steps)]
        if self.backend != "local":
            words += ["--backend", self.backend]
        return " ".join(shlex.quote(word) for word in words)


class TrainShape(BackendModel):
    """The per-step shape the out-of-memory downshift changes; micro-batch x accumulation stays constant."""

    batch_size: int = Field(ge=1)
    gradient_accumulation_steps: int = Field(ge=1)
    gradient_checkpointing: bool


class Downshift(BackendModel):
    """One out-of-memory retry: the shape that failed, the one tried next, and where."""

    run: str = Field(description="which model: 'main', 'final' or 'fold-N'")
    at_step: int
    before: TrainShape
    after: TrainShape
    error: str


class StepLoss(BackendModel):
    step: int
    epoch: float
    loss: float
    learning_rate: Optional[float] = None


class Evaluation(BackendModel):
    """One evaluation: the step it ran at and its metrics without the `eval_` prefix."""

    step: int
    epoch: Optional[float] = None
    metrics: dict[str, float]


class TrainResult(BackendModel):
    """One trained model: its loss curve, its evaluations and which one was kept."""

    run: str
    train_examples: int
    validation_examples: int = 0
    dropped_examples: int = Field(0, description="rows left with no token to learn after truncation")
    steps: int
    epochs: float
    runtime_s: float
    shape: TrainShape
    losses: list[StepLoss] = Field(default_factory=list)
    evaluations: list[Evaluation] = Field(default_factory=list)
    best_step: Optional[int] = None
    best_metric: Optional[float] = None
    early_stopped: bool = False
    final_eval: dict[str, float] = Field(default_factory=dict, description="the kept model on its validation split")


class MetricSummary(BackendModel):
    mean: float
    std: float
    values: list[float]


class RunMetrics(BackendModel):
    """metrics.json: everything a run measured, for people and for scripts."""

    schema_version: Literal[1] = 1
    status: Literal["completed", "interrupted", "failed"]
    task: Literal["classification", "causal_lm", "preference"]
    data_format: str
    method: str
    model: str
    device: str
    precision: str
    eval_metric: str
    label_names: list[str] = Field(default_factory=list)
    main: Optional[TrainResult] = Field(None, description="the model saved in the output directory")
    folds: list[TrainResult] = Field(default_factory=list, description="k-fold: one model per fold")
    kfold_summary: dict[str, MetricSummary] = Field(default_factory=dict, description="mean/std of each fold metric")
    test: dict[str, float] = Field(default_factory=dict, description="the saved model on the held-out test split")
    rows_left_out: int = Field(0, description="records no split trains on: truncation at seq_len leaves them "
                                              "nothing to learn (the preflight lets through only those whose prompt "
                                              "fills seq_len, under plan.json training.data.long_prompts \"drop\")")
    left_out_lines: list[int] = Field(default_factory=list, description=f"the first {LISTED_LINES} of their lines")
    downshifts: list[Downshift] = Field(default_factory=list)
    wall_time_s: float = 0.0


class RunManifest(BackendModel):
    """run-manifest.json: what a checkpoint was trained on, so --resume can refuse a changed run; and what the
    run wrote, so --overwrite replaces only that (advisor/ownership.py)."""

    schema_version: Literal[1] = 1
    advisor_version: str
    created: str
    data_path: str
    data_sha256: str
    data_bytes: int
    plan_sha256: str
    split_seed: int
    backend: Backend
    packages: dict[str, str]
    replaced_backup: Optional[str] = Field(None, description="where --overwrite moved the previous directory")
    files: dict[str, str] = Field(default_factory=dict, description="every file the run wrote: relative path -> sha256")
    directories: list[str] = Field(default_factory=list,
                                   description="folders whose whole content is the run's (checkpoints)")
    appending: list[str] = Field(default_factory=list,
                                 description="files the run appends to while it runs: its own by name")
