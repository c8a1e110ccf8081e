"""Statistics over the valid records: labels, duplicates, near-duplicates, conflicting labels, token lengths.

`validate.py` calls `compute_stats` and turns the numbers into warnings.
Token lengths come from the `tokenizer` callable (text -> token count) when
one is given, else from the estimate ceil(UTF-8 bytes / 4), about right for
English with BPE tokenizers; the report says which.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Optional

from .load import LoadedData
from .records import prompt_text, training_text, turns_text
from .report import ConflictingLabel, DataStats, LinePair, PreferenceStats, TokenLengths
from .similarity import near_duplicates, normalise_text

TokenCounter = Callable[[str], int]
BYTES_PER_TOKEN = 4


def compute_stats(
    loaded: LoadedData,
    tokenizer: Optional[TokenCounter] = None,
    seq_len: Optional[int] = None,
    max_listed: int = 50,
) -> DataStats:
    stats = DataStats(seq_len=seq_len)
    if not loaded.records:
        return stats
    if loaded.format == "classification":
        _label_stats(loaded, stats, max_listed)
    if loaded.format == "preference":
        stats.preference = _preference_stats(loaded, max_listed)
    _duplicate_stats(loaded, stats, max_listed)
    _token_stats(loaded, stats, tokenizer, seq_len)
    return stats


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN))


def _label_stats(loaded: LoadedData, stats: DataStats, max_listed: int) -> None:
    counts = Counter(record["label"] for record in loaded.records)
    stats.labels = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    if len(counts) > 1:
        stats.imbalance_ratio = round(max(counts.values()) / min(counts.values()), 2)
    by_text: dict[str, dict[str, list[int]]] = {}
    first_text: dict[str, str] = {}
    for record, line in zip(loaded.records, loaded.lines):
        key = normalise_text(record["text"])
        first_text.setdefault(key, record["text"])
        by_text.setdefault(key, {}).setdefault(record["label"], []).append(line)
    conflicts = [(key, labels) for key, labels in by_text.items() if len(labels) > 1]
    stats.conflicting_labels = len(conflicts)
    stats.conflicting_examples = [ConflictingLabel(text=first_text[key], labels=labels) for key, labels in conflicts[:max_listed]]


def _preference_stats(loaded: LoadedData, max_listed: int) -> PreferenceStats:
    identical = [line for record, line in zip(loaded.records, loaded.lines) if record["chosen"] == record["rejected"]]
    chosen = [len(turns_text(record["chosen"])) for record in loaded.records]
    rejected = [len(turns_text(record["rejected"])) for record in loaded.records]
    longer = sum(1 for a, b in zip(chosen, rejected) if a > b)
    return PreferenceStats(
        identical_pairs=len(identical), identical_lines=identical[:max_listed],
        chosen_longer_share=round(longer / len(chosen), 4),
        mean_chosen_chars=round(sum(chosen) / len(chosen), 1), mean_rejected_chars=round(sum(rejected) / len(rejected), 1),
    )


def _duplicate_stats(loaded: LoadedData, stats: DataStats, max_listed: int) -> None:
    """Exact: the same text once case, punctuation and spacing are folded (`normalise_text`), the definition
    `leakage.py` uses between two files. Near: not exact, but Jaccard >= 0.8 with an earlier text."""
    first_text: dict[str, int] = {}
    earlier_of: dict[int, int] = {}  # record position -> an earlier position it nearly repeats
    distinct: list[int] = []  # positions of the first record of each normalised text
    for position, record in enumerate(loaded.records):
        text = normalise_text(training_text(loaded.format, record))
        if text in first_text:
            stats.duplicates += 1
            if len(stats.duplicate_examples) < max_listed:
                stats.duplicate_examples.append(
                    LinePair(first_line=loaded.lines[first_text[text]], line=loaded.lines[position]))
        else:
            first_text[text] = position
            distinct.append(position)
    texts = list(first_text)  # in the order of `distinct`
    for later, earlier in near_duplicates(texts).items():
        earlier_of[distinct[later]] = distinct[earlier]
    stats.near_duplicates = len(earlier_of)
    stats.near_duplicate_examples = [
        LinePair(first_line=loaded.lines[earlier_of[position]], line=loaded.lines[position])
        for position in sorted(earlier_of)[:max_listed]
    ]


def _token_stats(loaded: LoadedData, stats: DataStats, tokenizer: Optional[TokenCounter], seq_len: Optional[int]) -> None:
    count = tokenizer or estimate_tokens
    lengths = sorted(count(training_text(loaded.format, record)) for record in loaded.records)
    prompts = [prompt_text(loaded.format, record) for record in loaded.records]
    prompt_lengths = (sorted(count(prompt) for prompt in prompts if prompt)
                      if loaded.format in ("alpaca", "chat", "preference") else [])
    stats.token_lengths = TokenLengths(
        p50=_nearest_rank(lengths, 0.50),
        p95=_nearest_rank(lengths, 0.95),
        max=lengths[-1],
        mean=round(sum(lengths) / len(lengths), 1),
        method="tokenizer" if tokenizer else "estimate",
        prompt_max=max(prompt_lengths, default=None),
        prompt_lengths=prompt_lengths,
    )
    if seq_len is None:
        return
    stats.truncated_at_seq_len = sum(1 for length in lengths if length > seq_len)
    if loaded.format in ("alpaca", "chat", "preference"):
        stats.nothing_to_learn_at_seq_len = stats.token_lengths.prompts_filling(seq_len)


def _nearest_rank(sorted_values: list[int], quantile: float) -> int:
    return sorted_values[max(0, math.ceil(quantile * len(sorted_values)) - 1)]
