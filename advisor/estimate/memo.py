"""Remember the answers of a pure function of (architecture, footprint, ...) within a process.

The fit search estimates one method's footprint in many configurations, and
asks the same questions again (measured on one plan: peak_memory 84 calls for
60 configurations, layer_grads 131 calls for 16). functools.cache cannot key
on a Footprint, which is not hashable (it holds lists), so its class and JSON
stand in for it; the architecture and the other arguments are hashable. The
function runs with the footprint it was given.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from pydantic import BaseModel

R = TypeVar("R")

#: Answers a remembered function keeps before it starts over.
KEPT = 4096


def by_footprint(function: Callable[..., R]) -> Callable[..., R]:
    """`function(arch, fp, *rest, **options)`, remembered by (arch, fp's class and JSON, rest, options). Its
    answer is shared: callers must not change it."""
    answers: dict[tuple, Any] = {}

    @functools.wraps(function)
    def remembered(arch: BaseModel, fp: BaseModel, *rest: Any, **options: Any) -> R:
        key = (arch, type(fp), fp.model_dump_json(), rest, tuple(sorted(options.items())))
        if key not in answers:
            if len(answers) >= KEPT:
                answers.clear()
            answers[key] = function(arch, fp, *rest, **options)
        return answers[key]

    return remembered
