"""`validate_file`: read a data file, list every bad record, measure the rest, and warn.

`advisor validate` prints the report; `advisor plan --data` reads it through
`profile_hints`; preflight calls it before a run. The report is ok when no
record has an error; warnings (duplicates, imbalance, leakage, truncation)
never make it fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import UserError
from .leakage import find_leakage
from .load import LoadedData, load_records
from .report import DataStats, ValidationReport
from .stats import TokenCounter, compute_stats

#: Warn when the chosen answer is the longer (or the shorter) one in at least this share of pairs.
LENGTH_BIAS_SHARE = 0.75
#: Warn when the largest class is this many times the smallest.
IMBALANCE_WARNING = 10.0
#: Fewer examples than this in a class cannot be stratified over the default 5 folds.
RARE_LABEL = 5
_SHOWN = 3  # examples quoted inside one warning


def validate_file(
    path: str | Path,
    format: str = "auto",
    text_column: Optional[str] = None,
    label_column: Optional[str] = None,
    seq_len: Optional[int] = None,
    tokenizer: Optional[TokenCounter] = None,
    against: Optional[str | Path] = None,
    max_listed: int = 50,
) -> ValidationReport:
    """The report for one data file or directory; UserError (exit 2) when it cannot be read at all."""
    if seq_len is not None and seq_len < 1:
        raise UserError(f"--seq-len must be a positive number of tokens, got {seq_len}")
    if max_listed < 0:
        raise UserError(f"max_listed must be >= 0, got {max_listed}")
    loaded = load_records(path, format, text_column, label_column)
    warnings = []
    stats = compute_stats(loaded, tokenizer, seq_len, max_listed)
    if against is not None:
        held_out = load_records(against, loaded.format, text_column, label_column)
        stats.leakage = find_leakage(loaded, held_out, max_listed)
        if held_out.errors:
            warnings.append(f"{len(held_out.errors)} invalid records of '{against}' were left out of the leakage check")
    warnings.extend(data_warnings(loaded, stats))
    return ValidationReport(
        ok=not loaded.errors,
        path=str(path),
        format=loaded.format,
        columns=loaded.columns,
        mapping=loaded.mapping,
        records=loaded.total,
        valid_records=len(loaded.records),
        error_count=len(loaded.errors),
        errors=loaded.errors[:max_listed],
        warnings=warnings,
        stats=stats,
    )


def data_warnings(loaded: LoadedData, stats: DataStats) -> list[str]:
    """Plain-language warnings from the statistics, each saying what to do about it."""
    warnings = []
    valid = len(loaded.records)
    if stats.duplicates:
        pairs = ", ".join(f"line {p.line} repeats line {p.first_line}" for p in stats.duplicate_examples[:_SHOWN])
        warnings.append(
            f"{_count(stats.duplicates, 'exact duplicate record')} (same text ignoring case, punctuation and "
            f"spacing; {_share(stats.duplicates, valid)}; {pairs}): "
            "they over-weight those examples; drop them"
        )
    if stats.near_duplicates:
        pairs = ", ".join(f"line {p.line} ~ line {p.first_line}" for p in stats.near_duplicate_examples[:_SHOWN])
        warnings.append(
            f"{_count(stats.near_duplicates, 'near-duplicate record')} ({_share(stats.near_duplicates, valid)}; {pairs}): "
            "keep them on one side of a split (--group-by) or drop them"
        )
    if stats.conflicting_labels:
        example = stats.conflicting_examples[0]
        labels = " and ".join(f"'{label}' (line {lines[0]})" for label, lines in example.labels.items())
        warnings.append(f"{_count(stats.conflicting_labels, 'text')} with conflicting labels, e.g. {example.text!r} is {labels}")
    warnings.extend(_label_warnings(stats))
    warnings.extend(_preference_warnings(stats))
    warnings.extend(_length_warnings(stats))
    if stats.leakage and (stats.leakage.exact or stats.leakage.near):
        leak = stats.leakage
        warnings.append(
            f"{leak.exact + leak.near} of {_count(leak.against_records, 'record')} of '{leak.against}' also occur in the data "
            f"({leak.exact} exact, {leak.near} near): evaluation on it would overstate quality; remove them from one side"
        )
    return warnings


def _label_warnings(stats: DataStats) -> list[str]:
    if not stats.labels:
        return []
    if len(stats.labels) == 1:
        return [f"every record has the label '{next(iter(stats.labels))}': there is nothing to classify"]
    warnings = []
    if stats.imbalance_ratio and stats.imbalance_ratio > IMBALANCE_WARNING:
        (top, top_count), (rare, rare_count) = next(iter(stats.labels.items())), list(stats.labels.items())[-1]
        # A label with one example cannot be on both sides of any split: stratifying is advice only from two up.
        advice = "stratify the split, and consider" if rare_count >= 2 else "consider"
        warnings.append(
            f"labels are imbalanced (ratio {stats.imbalance_ratio:g}: '{top}' has {top_count}, '{rare}' has {rare_count}): "
            f"{advice} class weights or more examples of the rare labels"
        )
    rare = [(label, count) for label, count in stats.labels.items() if count < RARE_LABEL]
    if rare:
        listed = ", ".join(f"'{label}' ({count})" for label, count in rare[-_SHOWN:])
        warnings.append(
            f"{_count(len(rare), 'label')} with fewer than {RARE_LABEL} examples ({listed}): too few to learn, "
            f"or to stratify a {RARE_LABEL}-fold split"
        )
    by_spelling: dict[str, list[str]] = {}
    for label in stats.labels:
        by_spelling.setdefault(" ".join(label.casefold().split()), []).append(label)
    for spellings in by_spelling.values():
        if len(spellings) > 1:
            warnings.append(f"labels {' and '.join(repr(s) for s in spellings)} differ only in case or spacing: merge them?")
    return warnings


def _preference_warnings(stats: DataStats) -> list[str]:
    pairs = stats.preference
    if pairs is None:
        return []
    warnings = []
    if pairs.identical_pairs:
        lines = ", ".join(str(line) for line in pairs.identical_lines[:_SHOWN])
        warnings.append(f"{_count(pairs.identical_pairs, 'pair')} whose chosen answer equals the rejected one "
                        f"(line {lines}): such a pair teaches no preference; drop them")
    share = pairs.chosen_longer_share
    if max(share, 1 - share) >= LENGTH_BIAS_SHARE:
        which = "longer" if share >= 0.5 else "shorter"
        warnings.append(
            f"the chosen answer is {which} than the rejected one in {100 * max(share, 1 - share):.0f}% of pairs "
            f"(mean {pairs.mean_chosen_chars:g} vs {pairs.mean_rejected_chars:g} characters): DPO can learn length "
            "instead of quality (Park et al. 2024, arXiv:2403.19159); balance the lengths or watch the answers' length"
        )
    return warnings


def _length_warnings(stats: DataStats) -> list[str]:
    lengths = stats.token_lengths
    if lengths is None or stats.seq_len is None:
        return []
    how = "counted with the tokenizer" if lengths.method == "tokenizer" else "estimated; pass --tokenizer to count exactly"
    warnings = []
    if stats.truncated_at_seq_len:
        warnings.append(
            f"{_count(stats.truncated_at_seq_len, 'record')} longer than --seq-len {stats.seq_len} tokens would be truncated "
            f"(p95 {lengths.p95}, max {lengths.max}; {how})"
        )
    if stats.nothing_to_learn_at_seq_len:
        warnings.append(
            f"{_count(stats.nothing_to_learn_at_seq_len, 'record')} with prompts of {stats.seq_len}+ tokens: truncation leaves "
            "no response to learn from; raise --seq-len or shorten them"
        )
    return warnings


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"
