"""Load the knowledge base (knowledge/*.toml) into validated pydantic models.

Catalogs of models and GPUs, method defaults, data-size guidance and the
rules are data, shipped inside the package as `advisor.knowledge`. A broken
file is a packaging bug, so errors name the file and the key. Loaded once per
process (the CLI answers in well under half a second).
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .architecture import Architecture
from .errors import UserError, describe_validation_error

T = TypeVar("T", bound=BaseModel)


class ModelEntry(BaseModel):
    """A base model: its id, where it comes from, and its shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    hf_id: Optional[str] = Field(None, description="hub id real users download")
    path: Optional[str] = Field(None, description="a local directory holding config.json")
    embedded_package: Optional[str] = Field(
        None, description="a Python package that ships the weights; its model_dir names the folder inside it"
    )
    embedded_model_dir: str = "model"
    architecture: Architecture

    @property
    def source(self) -> str:
        """What a backend passes to from_pretrained: a local path, the embedded files, or the hub id."""
        if self.path:
            return self.path
        if self.embedded_package:
            return str(resources.files(self.embedded_package).joinpath(self.embedded_model_dir))
        return self.hf_id or self.id


class GpuEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    memory_gib: float = Field(gt=0)
    bf16: bool = Field(description="bf16 tensor cores (Ampere and later, CDNA)")
    fp8: bool = Field(False, description="fp8 tensor cores (Ada, Hopper, Blackwell, CDNA3)")
    bitsandbytes: bool = Field(description="bitsandbytes' 4-/8-bit kernels run here (QLoRA, 8-bit optimizers)")
    cuda: bool = Field(description="torch.cuda drives it (CUDA, or ROCm's HIP under the same API)")
    peak_tflops_bf16: float = Field(ge=0)
    peak_tflops_fp32: float = Field(ge=0)


def knowledge_file(name: str) -> Path:
    """Path of a file in the packaged knowledge base."""
    return Path(str(resources.files("advisor.knowledge").joinpath(name)))


def read_toml(name: str) -> dict[str, Any]:
    path = knowledge_file(name)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise RuntimeError(f"knowledge/{name}: {error}") from error


def validate_entries(name: str, key: str, model: type[T], rows: list[dict]) -> list[T]:
    """Validate each `[[key]]` table of knowledge/`name` as `model`; errors name file, index and key."""
    entries = []
    for index, row in enumerate(rows):
        try:
            entries.append(model.model_validate(row))
        except ValidationError as error:
            label = row.get("id", index)
            raise RuntimeError(f"knowledge/{name} [[{key}]] {label}: {describe_validation_error(error, model)}")
    ids = [getattr(entry, "id", None) for entry in entries]
    duplicates = {i for i in ids if i is not None and ids.count(i) > 1}
    if duplicates:
        raise RuntimeError(f"knowledge/{name}: duplicate id(s) {sorted(duplicates)}")
    return entries


@functools.cache
def models() -> dict[str, ModelEntry]:
    rows = read_toml("models.toml")["model"]
    shaped = []
    for row in rows:
        meta = {k: row[k] for k in ("id", "hf_id", "embedded_package", "embedded_model_dir") if k in row}
        shape = {k: v for k, v in row.items() if k not in meta}
        shaped.append({**meta, "architecture": shape})
    return {entry.id: entry for entry in validate_entries("models.toml", "model", ModelEntry, shaped)}


@functools.cache
def gpus() -> dict[str, GpuEntry]:
    rows = read_toml("gpus.toml")["gpu"]
    return {entry.id: entry for entry in validate_entries("gpus.toml", "gpu", GpuEntry, rows)}


def resolve_model(model: str) -> ModelEntry:
    """A catalog id or a local directory with a config.json; UserError otherwise."""
    catalog = models()
    if model in catalog:
        return catalog[model]
    directory = Path(os.path.expanduser(model))  # unlike Path.expanduser, leaves an unknown ~user as it is
    config_file = directory / "config.json"
    if directory.is_dir() and config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
            if not isinstance(config, dict):
                raise ValueError("config.json is not a JSON object")
            architecture = Architecture.from_hf_config(config)
        except ValidationError as error:
            raise UserError(f"cannot read model directory '{model}': {describe_validation_error(error)}")
        except (ValueError, KeyError, TypeError, RecursionError, OSError) as error:
            raise UserError(f"cannot read model directory '{model}': {type(error).__name__}: {error}")
        return ModelEntry(id=directory.name, path=str(directory.resolve()), architecture=architecture)
    raise UserError(
        f"unknown model '{model}'; known: {', '.join(catalog)} (or pass a local model directory with a config.json)"
    )


def device_memory_label(gpu: Optional[str], memory_gib: float, overridden: bool) -> str:
    """How to name a device's memory: "79.2 GiB on h100", or "48.0 GiB (custom)" when the user set it."""
    if overridden or gpu is None:
        return f"{memory_gib:.1f} GiB (custom)"
    return f"{memory_gib:.1f} GiB on {gpu}"


def resolve_gpu(gpu: str) -> GpuEntry:
    catalog = gpus()
    if gpu not in catalog:
        raise UserError(f"unknown gpu '{gpu}'; known: {', '.join(catalog)}")
    return catalog[gpu]


class TaskEntry(BaseModel):
    """How much data a task family needs and how complex it is (knowledge/tasks.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    min_examples: int = Field(ge=0)
    recommended_examples: int = Field(ge=0)
    optimal_examples: int = Field(ge=0)
    complexity: Literal["simple", "standard", "complex", "very_complex"]
    seq_len: int = Field(ge=8)
    eval_metric: str


@functools.cache
def tasks() -> dict[str, TaskEntry]:
    rows = read_toml("tasks.toml")["task"]
    return {entry.id: entry for entry in validate_entries("tasks.toml", "task", TaskEntry, rows)}


@functools.cache
def method_preference() -> tuple[str, ...]:
    return tuple(read_toml("methods.toml")["preference"])


@functools.cache
def default_effective_batch() -> int:
    return int(read_toml("methods.toml")["training"]["effective_batch"])
