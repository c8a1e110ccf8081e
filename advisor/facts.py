"""Facts: everything a rule may test, derived once from the profile and the catalogs.

Rules name facts in their `when` tables; the loader refuses a name that is not
a field here. The planner fills the method facts after it has chosen one.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

from .knowledge_base import ModelEntry, resolve_gpu, resolve_model, tasks
from .methods import Method
from .models import Profile


class Facts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # -- what the person told us
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
    # -- derived from the catalogs
    params_b: float
    model_kind: str
    gpu_cuda: bool
    gpu_bf16: bool
    device_memory_gib: float
    task_min_examples: int
    task_recommended_examples: int
    task_optimal_examples: int
    complexity: str
    below_minimum: bool
    below_recommended: bool
    head: str
    # -- from a data file, when one was given
    data_given: bool = False
    data_labels: Optional[int] = None
    # -- filled in once a method is chosen
    approach: Optional[str] = None
    method: Optional[str] = None
    method_family: Optional[str] = None
    method_mergeable: Optional[bool] = None
    method_quantized: Optional[bool] = None
    method_capacity: Optional[int] = None
    method_settings: list[str] = []
    fit_changes: list[str] = []


def derive_facts(profile: Profile, model: Optional[ModelEntry] = None, data_labels: Optional[int] = None) -> Facts:
    """Facts for `profile` (UserError for an unknown model or GPU)."""
    model = model or resolve_model(profile.model)
    gpu = resolve_gpu(profile.gpu)
    task = tasks()[profile.task]
    return Facts(
        goal=profile.goal, task=profile.task, examples=profile.examples, quality=profile.quality,
        dynamic_knowledge=profile.dynamic_knowledge, one_off=profile.one_off, latency=profile.latency,
        tasks=profile.tasks, num_gpus=profile.num_gpus, model=profile.model, gpu=profile.gpu,
        params_b=model.architecture.total_params() / 1e9,
        model_kind=model.architecture.kind,
        gpu_cuda=gpu.cuda, gpu_bf16=gpu.bf16,
        device_memory_gib=profile.gpu_memory_gib or gpu.memory_gib,
        task_min_examples=task.min_examples, task_recommended_examples=task.recommended_examples,
        task_optimal_examples=task.optimal_examples, complexity=task.complexity,
        below_minimum=profile.examples < task.min_examples,
        below_recommended=task.min_examples <= profile.examples < task.recommended_examples,
        head="classification" if profile.task == "classification" else "lm",
        data_given=profile.data is not None, data_labels=data_labels,
    )


def method_facts(method: Method, fit_changes: list[str]) -> dict[str, Any]:
    """The facts a chosen (or candidate) method adds, for the training, data, memory and risk rules."""
    return {
        "approach": method.approach, "method": method.name, "method_family": method.family,
        "method_mergeable": method.mergeable, "method_quantized": method.quantized,
        "method_capacity": method.capacity, "method_settings": list(method.Hyperparameters.model_fields),
        "fit_changes": fit_changes,
    }
