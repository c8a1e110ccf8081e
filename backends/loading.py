"""Load the plan's base model and tokenizer, offline whenever the model is on disk.

`local.py` calls these; the CLI calls `model_source` and `check_reachable`
first, so a hub id on an offline machine is one line before anything loads:
the Hub is probed once per process (`advisor.hub`), and an unreachable Hub
switches to offline mode at once instead of letting huggingface_hub retry
for over a minute.
A local directory (the embedded MiniLM, a model built from a config) switches
the Hugging Face libraries to offline mode for the whole process: saving an
adapter or a model card then never reaches for the Hub (peft #1452).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from ..errors import UserError
from ..hub import hub_address, hub_reachable, offline_requested
from ..knowledge_base import resolve_model
from ..manager import plugin_call
from ..methods import Method, MethodHyperparameters
from ..precision import Dtypes
from .tasks import PEFT_TASK_TYPES


def model_source(model: str) -> str:
    """What from_pretrained takes for the plan's model: a directory holding config.json, or a hub id."""
    return resolve_model(model).source


def is_local(source: str) -> bool:
    return Path(source).is_dir()


def go_offline() -> None:
    """Offline mode for huggingface_hub, also when it was imported before (its flag is read at import)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


# Warnings a user of advisor cannot act on: one library deprecating its own API for another library that
# calls it (transformers' `is_gradient_checkpointing` FutureWarning from peft, once per fold), and setuptools'
# banners. Warnings about the user's data or settings (UserWarning and the like) stay.
LIBRARY_MODULES = r"(transformers|peft|accelerate|trl|torch|datasets|huggingface_hub|tokenizers)(\.|$)"
PACKAGING_MODULES = r"(setuptools|pkg_resources|_distutils_hack)(\.|$)"


def quiet_libraries() -> None:
    """transformers' load reports, per-file progress bars and library deprecations would bury the run's progress."""
    import warnings

    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARY_MODULES)
    warnings.filterwarnings("ignore", module=PACKAGING_MODULES)


def check_reachable(source: str) -> None:
    """A local model goes offline; a hub id goes offline too when the Hub does not answer, and must then be cached."""
    if not model_available(source):
        raise UserError(
            f"model '{source}' is a Hugging Face Hub id, the Hub is offline (HF_HUB_OFFLINE) and the model is not "
            "in the local cache; download it on a connected machine first, or set plan.json profile.model to a "
            "local model directory"
        )


def model_available(source: str) -> bool:
    """Whether from_pretrained can reach the model from here: a local directory, the Hub, or the local cache.

    Decided at once: the Hub is probed once (hub_reachable); when it does not answer, the process goes
    offline (HF_HUB_OFFLINE=1) so that no later load waits on huggingface_hub's retries.
    """
    if is_local(source):
        go_offline()
        return True
    if not offline_requested():
        if hub_reachable():
            return True
        host, _ = hub_address()
        print(f"advisor: the Hugging Face Hub ({host}) is not reachable; working offline (HF_HUB_OFFLINE=1)",
              file=sys.stderr)
        go_offline()
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(source, "config.json"), str)


def load_tokenizer(source: str, pad_left: bool = False) -> Any:
    """The tokenizer; `pad_left` is an init setting, so the tokenizer saved with the run pads left too."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, **({"padding_side": "left"} if pad_left else {}))
    except OSError as error:
        raise UserError(f"cannot load the tokenizer of '{source}': {str(error).splitlines()[0]}") from error


def load_model(
    source: str, kind: str, precision: Dtypes, method: Method, method_hp: MethodHyperparameters,
    labels: Optional[list[str]] = None, pad_token_id: Optional[int] = None,
) -> tuple[Any, set[str]]:
    """The trainable model (the method applied) and the names of the parameters the checkpoint provided."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    options: dict[str, Any] = {"dtype": getattr(torch, precision.weights), "output_loading_info": True}
    with plugin_call(method, "load_options()"):
        options.update(method.load_options(method_hp, precision))
    options.update(dequantizing_options(source, method.name, options))
    if kind == "classification":
        options.update(
            num_labels=len(labels or []),
            id2label=dict(enumerate(labels or [])),
            label2id={name: index for index, name in enumerate(labels or [])},
        )
        auto = AutoModelForSequenceClassification
    else:
        auto = AutoModelForCausalLM
    try:
        model, info = auto.from_pretrained(source, **options)
    except OSError as error:
        raise UserError(f"cannot load the model '{source}': {str(error).splitlines()[0]}") from error
    if pad_token_id is not None and model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    loaded = pretrained_names(model, info.get("missing_keys", ()))
    with plugin_call(method, "build()"):
        trainable = method.build(model, method_hp, PEFT_TASK_TYPES[kind])
        if not isinstance(trainable, torch.nn.Module):
            raise TypeError(f"build() returned {type(trainable).__name__}, not a torch module")
    if precision.weights == "float16":
        trainable_in_fp32(trainable)
    return trainable, loaded


def stored_quantization(source: str) -> Optional[str]:
    """The quant_method of a checkpoint stored quantised (config.json's quantization_config), else None."""
    from transformers import PreTrainedConfig

    try:
        config, _ = PreTrainedConfig.get_config_dict(source)
    except OSError:  # from_pretrained reports a missing or unreadable config in its own words
        return None
    return (config.get("quantization_config") or {}).get("quant_method")


def dequantizing_options(source: str, method: str, options: dict[str, Any]) -> dict[str, Any]:
    """from_pretrained options that load a checkpoint stored in MXFP4 (gpt-oss) dequantised, for training.

    transformers keeps MXFP4 experts packed where triton and the `kernels` package run, and such a model does
    not train (Mxfp4HfQuantizer.is_trainable is False); only without them does it dequantise on its own.
    Mxfp4Config(dequantize=True) dequantises always, to the dtype the model loads in (the estimator prices
    those 16-bit weights). A method with its own quantisation (QLoRA) cannot load such a checkpoint:
    transformers refuses a second quantisation config (quantizers/auto.py merge_quantization_configs).
    """
    if stored_quantization(source) != "mxfp4":
        return {}
    if "quantization_config" in options:
        raise UserError(f"model '{source}' is stored MXFP4-quantised and transformers cannot quantise it again "
                        f"for {method}; plan a method that trains the dequantised 16-bit model (--method lora)")
    from transformers import Mxfp4Config

    return {"quantization_config": Mxfp4Config(dequantize=True)}


def trainable_in_fp32(model: Any) -> None:
    """Cast what trains of an fp16 frozen base to fp32: fp16 autocast's GradScaler refuses fp16 gradients.

    peft's adapters already are fp32 (autocast_adapter_dtype); a new classification head, modules a plugin
    builds in the base's dtype (bottleneck adapters) and the base layers a method trains (freeze's top layers)
    are not. The frozen weights stay fp16 (advisor.precision).
    """
    import torch

    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype == torch.float16:
            parameter.data = parameter.data.float()


def pretrained_names(model: Any, missing_keys: Iterable[str]) -> set[str]:
    """Names of the parameters the checkpoint provided: all of the freshly loaded model but the missing ones."""
    missing = set(missing_keys)
    return {name for name, _ in model.named_parameters() if name not in missing}


def token_counter(model: str) -> Callable[[str], int]:
    """text -> token count with the model's tokenizer, loaded from local files only."""
    source = resolve_model(model).source
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as error:  # missing files, no network, unknown tokenizer class: one line for the user
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load the tokenizer of '{model}' from '{source}' offline ({reason}); pass a local model directory")
    return lambda text: len(tokenizer(text, add_special_tokens=True)["input_ids"])


def model_type_of(source: str, model: str) -> str:
    """The transformers model_type: from a local config.json, else the one the catalog entry records
    (its published config's; an entry without one falls back to its family, which differs only for Gemma 3)."""
    config_file = Path(source) / "config.json"
    if config_file.is_file():
        return json.loads(config_file.read_text(encoding="utf-8"))["model_type"]
    entry = resolve_model(model)
    return entry.model_type or entry.architecture.family
