"""Load the knowledge base (knowledge/*.toml) into validated pydantic models.

Catalogs of models and GPUs, method defaults, data-size guidance and the
rules are data, shipped inside the package as `advisor.knowledge`. A broken
file is a packaging bug, so errors name the file and the key. Loaded once per
process (the CLI answers in well under half a second).
"""

import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Literal, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import toml_cache
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
    aliases: tuple[str, ...] = Field((), description="other names people type for this model")
    model_type: Optional[str] = Field(
        None, description="its config.json's model_type, what transformers builds (gemma-3-1b: gemma3_text)")
    stored_quantization: Optional[str] = Field(
        None, description="the quant_method of a checkpoint stored quantised (config.json's quantization_config): "
        "gpt-oss's mxfp4")
    architecture: Architecture

    @property
    def source(self) -> str:
        """What a backend passes to from_pretrained: a local path, the embedded files, or the hub id."""
        if self.path:
            return self.path
        if self.embedded_package:
            from importlib import resources  # here: a plan never asks, and the import is 3 M instructions

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
    aliases: tuple[str, ...] = Field((), description="other names people type for this GPU")
    interconnect: Optional[str] = Field(None, description="how it talks to the other GPUs of its node, in words")
    intra_node_gb_per_s: Optional[float] = Field(
        None, gt=0, description="that link's rate in GB/s each way per GPU (data sheet); None: the estimate assumes one")


def knowledge_file(name: str) -> Path:
    """Path of a file in the packaged knowledge base."""
    return _knowledge_directory() / name


@functools.cache
def _knowledge_directory() -> Path:
    # The package's directory, as importlib.resources.files would name it for a package installed as files
    # (toml_cache reads real files); without that module's readers, which import zipfile (3 M instructions).
    from . import knowledge

    return Path(knowledge.__path__[0])


def read_toml(name: str) -> dict[str, Any]:
    """A knowledge file, parsed (through toml_cache: parsing all of them was a tenth of a cold plan)."""
    try:
        return toml_cache.load(knowledge_file(""), name)
    except ValueError as error:  # tomllib.TOMLDecodeError, or bytes that are not UTF-8
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
        meta = {k: row[k] for k in ("id", "hf_id", "embedded_package", "embedded_model_dir", "aliases", "model_type",
                                    "stored_quantization") if k in row}
        shape = {k: v for k, v in row.items() if k not in meta}
        shaped.append({**meta, "architecture": shape})
    return {entry.id: entry for entry in validate_entries("models.toml", "model", ModelEntry, shaped)}


@functools.cache
def gpus() -> dict[str, GpuEntry]:
    rows = read_toml("gpus.toml")["gpu"]
    return {entry.id: entry for entry in validate_entries("gpus.toml", "gpu", GpuEntry, rows)}


def model_key(name: str) -> str:
    """How a model name is compared: case, spaces and underscores do not matter ("Llama 3.1 8B" = "llama-3.1-8b")."""
    return re.sub(r"[\s_-]+", "-", name.strip().lower())


@functools.cache
def model_names() -> dict[str, str]:
    """Every name that means a catalog model -> its id: the id, the hub id, the hub id's name part, the aliases."""
    names: dict[str, str] = {}
    for entry in models().values():
        spellings = [entry.id, *entry.aliases]
        if entry.hf_id:
            spellings += [entry.hf_id, entry.hf_id.split("/")[-1]]
        for spelling in spellings:
            names.setdefault(model_key(spelling), entry.id)
    return names


def resolve_model(model: str) -> ModelEntry:
    """A catalog model by any of its names, a local directory with a config.json, or a hub model (cached or fetched)."""
    catalog = models()
    known = model_names().get(model_key(model))
    if known is not None:
        return catalog[known]
    directory = Path(os.path.expanduser(model))  # unlike Path.expanduser, leaves an unknown ~user as it is
    if directory.is_dir() and (directory / "config.json").is_file():
        return model_from_config(model, directory, path=str(directory.resolve()))
    cached = cached_hub_snapshot(model)
    if cached is not None:
        return model_from_config(model, cached, hf_id=model)
    if is_hub_id(model):  # neither catalog nor cache: its config.json from the Hub, or one line saying why not
        from .hub import download_model_file

        return model_from_config(model, download_model_file(model, "config.json").parent, hf_id=model)
    raise UserError(
        f"unknown model '{model}'; known: {', '.join(catalog)} "
        "(or pass a local model directory with a config.json, or a Hugging Face Hub id owner/name)"
    )


def device_memory_label(gpu: Optional[str], memory_gib: float, overridden: bool) -> str:
    """How to name a device's memory: "79.2 GiB on h100", or "48.0 GiB (custom)" when the user set it."""
    if overridden or gpu is None:
        return f"{memory_gib:.1f} GiB (custom)"
    return f"{memory_gib:.1f} GiB on {gpu}"


def model_from_config(model: str, directory: Path, **source: str) -> ModelEntry:
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("config.json is not a JSON object")
        architecture = Architecture.from_hf_config(config)
    except ValidationError as error:
        raise UserError(f"cannot read model directory '{model}': {describe_validation_error(error)}")
    except (ValueError, KeyError, TypeError, RecursionError, OSError) as error:
        raise UserError(f"cannot read model directory '{model}': {type(error).__name__}: {error}")
    name = source.get("hf_id") or directory.name
    quantization = config.get("quantization_config")
    stored = quantization.get("quant_method") if isinstance(quantization, dict) else None
    return ModelEntry(id=name, architecture=architecture, model_type=config["model_type"],
                      stored_quantization=stored if isinstance(stored, str) else None, **source)


def is_hub_id(name: str) -> bool:
    """`owner/name` as the Hugging Face Hub spells repository ids."""
    return re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None and not Path(name).exists()


def cached_hub_snapshot(name: str, filename: str = "config.json") -> Optional[Path]:
    """The newest snapshot of hub model `name` in the local Hugging Face cache holding `filename`, if any.

    Read from the cache layout (hub/models--owner--name/snapshots/<rev>/) so planning stays free of
    huggingface_hub; HF_HUB_CACHE and HF_HOME are honoured as the hub library honours them.
    """
    if not is_hub_id(name):
        return None
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    cache = Path(os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub")).expanduser()
    snapshots = cache / ("models--" + name.replace("/", "--")) / "snapshots"
    found = sorted(snapshots.glob(f"*/{filename}"), key=lambda path: path.stat().st_mtime) if snapshots.is_dir() else []
    return found[-1].parent if found else None


def gpu_key(name: str) -> str:
    """How a GPU name is compared: no case, no vendor or brand words, no spaces or dashes ("RTX 4090" = "rtx4090")."""
    words = re.sub(r"\b(nvidia|geforce|tesla)\b", "", name.lower())
    return re.sub(r"[^a-z0-9]", "", words)


@functools.cache
def gpu_names() -> dict[str, str]:
    """Every name that means a catalog GPU -> its id: the id, the marketing name, id plus memory ("h100-80gb")."""
    names: dict[str, str] = {}
    for entry in gpus().values():
        memory = re.search(r"(\d+)\s*GB", entry.name)
        spellings = [entry.id, entry.name, *entry.aliases]
        if memory and memory.group(1) not in entry.id:
            spellings.append(f"{entry.id}{memory.group(1)}gb")
        for spelling in spellings:
            names.setdefault(gpu_key(spelling), entry.id)
    return names


def resolve_gpu(gpu: str) -> GpuEntry:
    """A catalog GPU by id, marketing name or a common spelling of either; UserError otherwise."""
    catalog = gpus()
    key = gpu_key(gpu)
    known = gpu_names().get(key)
    if known is not None:
        return catalog[known]
    close = sorted({gpu_id for name, gpu_id in gpu_names().items() if len(key) >= 3 and name.startswith(key)})
    if len(close) > 1:
        raise UserError(f"gpu '{gpu}' is ambiguous: say which of {', '.join(close)}")
    raise UserError(f"unknown gpu '{gpu}'; known: {', '.join(catalog)}")


class TaskEntry(BaseModel):
    """How much data a task family needs and how complex it is (knowledge/tasks.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    min_examples: int = Field(ge=0)
    recommended_examples: int = Field(ge=0)
    optimal_examples: int = Field(ge=0)
    size_table: Literal["000", "002"] = Field(description="the seed whose data-size table gives the counts: "
                                              "000 § How Much Data is Needed? or 002 § Dataset Size Guidelines")
    size_row: str = Field(min_length=3, description="that table's row, and why when the task is not named in it")
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
