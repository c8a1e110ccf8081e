"""Preference pairs for a preference method (DPO, or ORPO/KTO from a plugin): encoding and the TRL trainer.

TRL's trainer tokenises the pairs itself (the chat template for message
lists, an EOS after text answers) and computes the loss; this module only
measures the pairs the same way before the run, for the preflight and the
truncation count, and builds the trainer the method names with the plan's
training arguments, its checkpoints staged like PlanTrainer's.

The measuring mirrors DPOTrainer._prepare_dataset (trl 1.16) with TRL's own
helpers: `trl.data_utils._tokenize` is private, so a TRL upgrade is checked by
tests/backends/test_backend_preference.py, which compares these ids with the
trainer's own tokenised dataset.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .tasks import IGNORE_INDEX, Encoded

#: The keys of a pair TRL's preference trainers read.
PAIR_KEYS = ("prompt", "chosen", "rejected")


def encode_pairs(records: Sequence[dict[str, Any]], tokenizer: Any, seq_len: int) -> Encoded:
    """Each pair with its token ids as TRL makes them; None where the prompt alone fills seq_len (TRL drops it):
    the preflight refuses such a pair, or leaves it out under plan.json training.data.long_prompts "drop"."""
    from trl.data_utils import _tokenize, common_prefix_length, is_conversational

    features: list[Optional[dict[str, Any]]] = []
    truncated = 0
    for record in records:
        pair = {key: record[key] for key in PAIR_KEYS}
        if is_conversational(pair):
            prompt = _tokenize(tokenizer, pair["prompt"], add_generation_prompt=True)["input_ids"]
            chosen = _tokenize(tokenizer, pair["prompt"] + pair["chosen"])["input_ids"]
            rejected = _tokenize(tokenizer, pair["prompt"] + pair["rejected"])["input_ids"]
        else:
            eos = tokenizer.eos_token or ""
            prompt = _tokenize(tokenizer, pair["prompt"])["input_ids"]
            chosen = _tokenize(tokenizer, pair["prompt"] + _with_eos(pair["chosen"], eos))["input_ids"]
            rejected = _tokenize(tokenizer, pair["prompt"] + _with_eos(pair["rejected"], eos))["input_ids"]
        shared = min(common_prefix_length(prompt, chosen), common_prefix_length(prompt, rejected))
        if shared >= seq_len:
            features.append(None)
            continue
        truncated += max(len(chosen), len(rejected)) > seq_len
        # input_ids/labels: the longer sequence, as the length-based tools (preflight, sampler) read a row.
        longest = max(chosen, rejected, key=len)[:seq_len]
        features.append({
            **pair,
            "input_ids": longest,
            "labels": [IGNORE_INDEX] * shared + longest[shared:],
            "prompt_ids": prompt[:shared],
            "chosen_ids": chosen[shared:seq_len],
            "rejected_ids": rejected[shared:seq_len],
        })
    return Encoded(features=features, truncated=truncated)


def _with_eos(text: str, eos: str) -> str:
    return text if not eos or text.endswith(eos) else text + eos


def pairs_dataset(features: Sequence[dict[str, Any]]) -> Any:
    """The pairs alone, as TRL's trainer takes them (it tokenises them again, the same way)."""
    from datasets import Dataset

    return Dataset.from_list([{key: feature[key] for key in PAIR_KEYS} for feature in features])


def build_preference_trainer(
    trainer_class: type, *, model: Any, tokenizer: Any, args: Any, train_features: Sequence[dict[str, Any]],
    eval_features: Sequence[dict[str, Any]], callbacks: list[Any],
) -> Any:
    """The method's TRL trainer on the pairs, its checkpoints staged as PlanTrainer's (checkpoints.py); it logs
    loss, reward margins and accuracies."""
    from .checkpoints import StagedCheckpoints

    staged = type(f"Staged{trainer_class.__name__}", (StagedCheckpoints, trainer_class), {})
    return staged(
        model=model,
        args=args,
        train_dataset=pairs_dataset(train_features),
        eval_dataset=pairs_dataset(eval_features) if eval_features else None,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
