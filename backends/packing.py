"""Packing for causal-LM SFT: each micro-batch becomes one padding-free row, examples kept apart.

transformers' DataCollatorWithFlattening concatenates the micro-batch and
restarts `position_ids` at every example; with no attention mask, the masking
utilities of transformers 5 (`find_packed_sequence_indices`) turn those
restarts into a block-diagonal causal mask, so no token attends across
examples, and the first label of each example is -100, so no loss crosses a
boundary. The model computes the same per-token losses as padded rows
(tests/backends/test_backend_packing.py) on the real tokens only. The packed
mask is built only without a KV cache: the Trainer gives the model
`use_cache=False` (TrainingArguments.use_cache), as training needs.

Where it cannot hold, packing is off with the reason:
- classification and preference pairs (a head per row; TRL pads pairs itself);
- soft prompts: prompt tuning prepends virtual tokens per row, prefix tuning
  attends to a cache, and the packed mask is only built without one;
- a model whose modeling code does not build its mask with those utilities.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Optional

from ..methods import Method

#: The mask builders that read packed position ids (transformers.masking_utils).
PACKED_MASK_BUILDERS = ("create_causal_mask", "create_sliding_window_causal_mask")


def packing_refusal(kind: str, method: Method, model_type: Optional[str]) -> Optional[str]:
    """Why these examples cannot be packed, or None when they can."""
    if kind != "causal_lm":
        return f"{kind} rows are not packed (each row is scored on its own)"
    if method.family == "soft-prompt":
        return f"'{method.name}' adds virtual tokens to every row, which a packed row would share"
    if model_type is not None and not _builds_packed_masks(model_type):
        return f"the '{model_type}' modeling code does not mask packed rows"
    return None


def _builds_packed_masks(model_type: str) -> bool:
    """Whether the model's modeling module builds its causal mask with transformers' packed-aware utilities."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.for_model(model_type))]
        source = inspect.getsource(importlib.import_module(model_class.__module__))
    except (KeyError, ValueError, OSError, TypeError):
        return False
    return any(f"{builder}(" in source for builder in PACKED_MASK_BUILDERS)


def packing_collator() -> Any:
    from transformers import DataCollatorWithFlattening

    return DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
