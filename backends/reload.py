"""Load a finished run's model for inference: what the model card of a plugin-built method points to.

Full and partial fine-tunes load with plain transformers and peft adapters
with plain peft (the model card shows that code). A method whose trained
modules no transformers class has (the bottleneck `adapter`) saves a state
dict that only the base rebuilt by its plugin can take: `load_trained` does
that rebuild, from the run's own plan.json, and loads the weights strictly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..documents import load_plan
from ..errors import UserError
from ..manager import get_method
from .loading import model_source
from .tasks import PEFT_TASK_TYPES


def load_trained(path: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) of the run saved in `path` by `advisor execute`, ready for inference."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    plan = load_plan(str(path / "plan.json"))
    method = get_method(plan.training.method)
    kind = "classification" if plan.profile.task == "classification" else "causal_lm"
    auto = AutoModelForSequenceClassification if kind == "classification" else AutoModelForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(path)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base = auto.from_pretrained(model_source(plan.profile.model), config=AutoConfig.from_pretrained(path))
        return PeftModel.from_pretrained(base, path), tokenizer
    if method.plain_checkpoint:
        return auto.from_pretrained(path), tokenizer
    return _rebuilt(path, plan, method, auto, PEFT_TASK_TYPES[kind]), tokenizer


def _rebuilt(path: Path, plan: Any, method: Any, auto: type, task_type: str) -> Any:
    from safetensors.torch import load_file
    from transformers import AutoConfig

    base = auto.from_pretrained(model_source(plan.profile.model), config=AutoConfig.from_pretrained(path))
    model = method.build(base, method.hyperparameters(plan.training.hyperparameters.method), task_type)
    loaded = model.load_state_dict(load_file(path / "model.safetensors"), strict=False)
    tied = {name for name in loaded.missing_keys if _tied_to_the_embeddings(model, name)}
    if loaded.unexpected_keys or set(loaded.missing_keys) - tied:
        raise UserError(f"'{path}' does not match a {method.name} model of {plan.profile.model}: missing "
                        f"{sorted(set(loaded.missing_keys) - tied)[:3]}, unexpected {loaded.unexpected_keys[:3]}")
    return model


def _tied_to_the_embeddings(model: Any, name: str) -> bool:
    """A weight saved once because it is the input embedding's (a tied output head)."""
    embedding = model.get_input_embeddings().weight
    return name.endswith(".weight") and model.get_parameter(name) is embedding
