"""What the person answered, as a Profile, and the `advisor plan` command that says the same.

The wizard keeps one Profile whose `model_fields_set` are exactly the answers
that differ from the defaults: the planner fills the rest (from the data file
when one is given), and the equivalent command names only those flags.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..models import Profile, validate_profile


def default(field: str) -> Any:
    return Profile.model_fields[field].default


def given(profile: Profile) -> dict[str, Any]:
    """The fields the person set to something other than the default."""
    return {field: getattr(profile, field) for field in Profile.model_fields
            if field in profile.model_fields_set and getattr(profile, field) != default(field)}


def answer(profile: Profile, values: dict[str, Any]) -> Profile:
    """`profile` with `values` applied (None = back to the default); UserError names a bad value."""
    merged = given(profile) | {field: value for field, value in values.items() if value is not None}
    for field, value in values.items():
        if value is None:
            merged.pop(field, None)
    checked = validate_profile(merged)
    return validate_profile(given(checked))


def command_line(profile: Profile) -> str:
    """`advisor plan ...` with a flag per given answer, in the order of the Profile's fields."""
    words = ["advisor", "plan"]
    answers = given(profile)
    if {"goal", "goals"} & answers.keys():  # several goals are --goal given once per goal
        words += [word for goal in profile.all_goals() for word in ("--goal", goal)]
    for field, value in answers.items():
        if field in ("goal", "goals"):
            continue
        flag = "--" + field.replace("_", "-")
        if isinstance(value, bool):
            words += [flag] if value else []
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)
