"""`split_records`: train/validation(/test) indices or k folds, with scikit-learn, deterministic for a seed.

`advisor split` and the backends call it on `LoadedData.rows()` (or any list
of dicts); `manifest.write_split` turns the plan into files. Which splitter:

| stratify_by | group_by | ratio split                        | k-fold               |
|-------------|----------|------------------------------------|----------------------|
| -           | -        | train_test_split (shuffled)        | KFold                |
| column      | -        | train_test_split(stratify=...)     | StratifiedKFold      |
| -           | column   | GroupShuffleSplit                  | GroupKFold           |
| column      | column   | StratifiedGroupKFold, first fold   | StratifiedGroupKFold |

A test share (test_ratio > 0) is held out first, the same way, and the rest
is split into train/validation or k folds. With groups, GroupShuffleSplit's
ratio counts groups, not records; stratified group splits take the first of
round(1 / ratio) folds, so the validation share is about 1/k. A class too
small to stratify is a UserError naming it, its count and what is needed.
Indices are positions in `records`, sorted ascending.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError


class Fold(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: list[int]
    validation: list[int]


class SplitPlan(BaseModel):
    """Which record goes where: `splits` by name, and `folds` for k-fold (the rest of a test hold-out)."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(description="the scikit-learn splitter(s) used")
    seed: int
    stratify_by: Optional[str] = None
    group_by: Optional[str] = None
    splits: dict[str, list[int]] = Field({}, description="train/validation/test, or only test with k-fold")
    folds: list[Fold] = []


def split_records(
    records: Sequence[dict[str, Any]],
    *,
    validation_ratio: float = 0.2,
    test_ratio: float = 0.0,
    stratify_by: Optional[str] = None,
    group_by: Optional[str] = None,
    kfold: Optional[int] = None,
    seed: int = 42,
) -> SplitPlan:
    _check_shape(len(records), validation_ratio, test_ratio, kfold)
    labels = _column(records, stratify_by)
    groups = _column(records, group_by)
    if groups is not None and len(set(groups)) < 2:
        raise UserError(f"--group-by '{group_by}' has a single group: no split can keep it on one side")
    used: list[str] = []  # the splitters, in order, for the plan's `strategy`
    splits: dict[str, list[int]] = {}
    folds: list[Fold] = []
    rest = list(range(len(records)))
    if test_ratio > 0:
        rest, splits["test"] = _holdout(rest, test_ratio, labels, groups, seed, "test", used)
    if kfold:
        folds = _kfold(rest, kfold, labels, groups, seed, used)
    else:
        share = validation_ratio / (1 - test_ratio)
        splits["train"], splits["validation"] = _holdout(rest, share, labels, groups, seed, "validation", used)
    return SplitPlan(
        strategy=" + ".join(dict.fromkeys(used)),
        seed=seed,
        stratify_by=stratify_by,
        group_by=group_by,
        splits={name: splits[name] for name in ("train", "validation", "test") if name in splits},
        folds=folds,
    )


def _check_shape(count: int, validation_ratio: float, test_ratio: float, kfold: Optional[int]) -> None:
    if count < 2:
        raise UserError(f"cannot split {count} record(s): at least 2 are needed")
    if not 0 <= test_ratio < 1:
        raise UserError(f"--test-ratio must be in [0, 1), got {test_ratio}")
    if kfold is not None:
        if kfold < 2:
            raise UserError(f"--kfold must be at least 2, got {kfold}")
        return
    if not 0 < validation_ratio < 1 or validation_ratio + test_ratio >= 1:
        raise UserError(
            f"--validation-ratio must be in (0, 1) and leave room for training with --test-ratio {test_ratio}; got {validation_ratio}"
        )


def _column(records: Sequence[dict[str, Any]], key: Optional[str]) -> Optional[list[str]]:
    """The values of `key` as strings (lists and numbers compare by their JSON), or None without a key."""
    if key is None:
        return None
    values = []
    for position, record in enumerate(records):
        value = record.get(key)
        if value is None:
            raise UserError(f"record {position + 1} has no value for '{key}'")
        values.append(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    return values


def _holdout(
    indices: list[int], share: float, labels: Optional[list[str]], groups: Optional[list[str]], seed: int, name: str, used: list[str]
) -> tuple[list[int], list[int]]:
    """(kept, held out) positions; `share` of `indices` is held out."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

    y = [labels[i] for i in indices] if labels is not None else None
    g = [groups[i] for i in indices] if groups is not None else None
    if y is not None and g is not None:
        folds = max(2, round(1 / share))
        _check_groups(g, folds, f"a {name} share of {share:.3g} (1 of {folds} group folds)")
        _check_strata(y, 2, f"a stratified {name} split")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        kept, held = next(splitter.split(indices, y, g))
        used.append("StratifiedGroupKFold")
    elif g is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=share, random_state=seed)
        kept, held = next(splitter.split(indices, groups=g))
        used.append("GroupShuffleSplit")
    else:
        if y is not None:
            _check_strata(y, 2, f"a stratified {name} split")
            _check_room(len(y), share, len(set(y)), name)
        kept, held = train_test_split(list(range(len(indices))), test_size=share, random_state=seed, stratify=y)
        used.append("train_test_split(stratify)" if y is not None else "train_test_split")
    if len(kept) == 0 or len(held) == 0:
        raise UserError(f"a {name} share of {share:.3g} of {len(indices)} records leaves one side empty; change the ratio")
    return sorted(indices[i] for i in kept), sorted(indices[i] for i in held)


def _kfold(
    indices: list[int], k: int, labels: Optional[list[str]], groups: Optional[list[str]], seed: int, used: list[str]
) -> list[Fold]:
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    y = [labels[i] for i in indices] if labels is not None else None
    g = [groups[i] for i in indices] if groups is not None else None
    if len(indices) < k:
        raise UserError(f"--kfold {k} needs at least {k} records to split, there are {len(indices)}")
    if g is not None:
        _check_groups(g, k, f"--kfold {k}")
    if y is not None:
        _check_strata(y, k, f"stratified --kfold {k}")
    if y is not None and g is not None:
        splitter, used_name = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed), "StratifiedGroupKFold"
    elif g is not None:
        splitter, used_name = GroupKFold(n_splits=k, shuffle=True, random_state=seed), "GroupKFold"
    elif y is not None:
        splitter, used_name = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed), "StratifiedKFold"
    else:
        splitter, used_name = KFold(n_splits=k, shuffle=True, random_state=seed), "KFold"
    used.append(used_name)
    positions = list(range(len(indices)))
    return [
        Fold(train=sorted(indices[i] for i in train), validation=sorted(indices[i] for i in validation))
        for train, validation in splitter.split(positions, y, g)
    ]


#: How `advisor split` changes each setting a refusal names (execute names the plan.json key instead).
CLI_FLAGS = {"stratify": "--no-stratify", "validation_ratio": "--validation-ratio", "test_ratio": "--test-ratio"}


class SplitRefused(UserError):
    """A split this data cannot give; `setting` is the key to change (DataHandling: plan.json training.data.*)."""

    def __init__(self, reason: str, setting: str) -> None:
        super().__init__(f"{reason} ({CLI_FLAGS[setting]})")
        self.reason = reason
        self.setting = setting


def _check_strata(labels: list[str], needed: int, what: str) -> None:
    counts = Counter(labels)
    too_few = sorted((count, label) for label, count in counts.items() if count < needed)
    if too_few:
        listed = ", ".join(f"'{label}' has {count}" for count, label in too_few[:5])
        more = f" (and {len(too_few) - 5} more)" if len(too_few) > 5 else ""
        raise SplitRefused(
            f"cannot stratify: class {listed}{more} example(s); {what} needs at least {needed} per class. "
            "Merge or drop the rare classes, or split without stratification", "stratify",
        )


def _check_room(count: int, share: float, classes: int, name: str) -> None:
    """A stratified split needs at least one record of each class on each side."""
    held = math.ceil(share * count)
    if held < classes or count - held < classes:
        needed = classes / count
        raise SplitRefused(
            f"a {name} share of {share:.3g} gives {held} of {count} records but there are {classes} classes; "
            f"a stratified split needs one per class on each side: use a share between {needed:.3g} and {1 - needed:.3g}",
            f"{name}_ratio",
        )


def _check_groups(groups: list[str], needed: int, what: str) -> None:
    distinct = len(set(groups))
    if distinct < needed:
        raise UserError(f"{what} needs at least {needed} distinct groups, there are {distinct}")
