"""`profile_hints`: what `advisor plan --data FILE` learns about a Profile from the data itself.

The planner calls it with the ValidationReport of the --data file and fills
`examples`, `task` and `quality` from the answer (flags the user gave still
win); it adds `report.warnings` to the plan's warnings.

Quality thresholds, on the valid records (error share on all records):
- low: more than 5% of records invalid, or more than 20% exact+near
  duplicates, or more than 2% of texts with conflicting labels, or a class
  imbalance ratio above 100;
- high: no invalid record, under 1% duplicates, no conflicting label and an
  imbalance ratio of at most 10;
- medium: anything between.
"""

from __future__ import annotations

from typing import Any

from .report import ValidationReport

#: The task family of each data format (models.Task values).
TASK_OF_FORMAT = {
    "classification": "classification", "alpaca": "instruction", "chat": "instruction", "text": "domain-adaptation",
    "preference": "preference",
}

LOW_ERROR_SHARE, LOW_DUPLICATE_SHARE, LOW_CONFLICT_SHARE, LOW_IMBALANCE = 0.05, 0.20, 0.02, 100.0
HIGH_DUPLICATE_SHARE, HIGH_IMBALANCE = 0.01, 10.0


def profile_hints(report: ValidationReport) -> dict[str, Any]:
    """{"examples": valid records, "task": a Task, "quality": "low" | "medium" | "high"}."""
    return {
        "examples": report.valid_records,
        "task": TASK_OF_FORMAT[report.format],
        "quality": data_quality(report),
    }


def data_quality(report: ValidationReport) -> str:
    stats = report.stats
    valid = max(report.valid_records, 1)
    error_share = report.error_count / max(report.records, 1)
    duplicate_share = (stats.duplicates + stats.near_duplicates) / valid
    conflict_share = stats.conflicting_labels / valid
    imbalance = stats.imbalance_ratio or 1.0
    if (
        error_share > LOW_ERROR_SHARE
        or duplicate_share > LOW_DUPLICATE_SHARE
        or conflict_share > LOW_CONFLICT_SHARE
        or imbalance > LOW_IMBALANCE
    ):
        return "low"
    if report.error_count == 0 and duplicate_share < HIGH_DUPLICATE_SHARE and stats.conflicting_labels == 0 and imbalance <= HIGH_IMBALANCE:
        return "high"
    return "medium"
