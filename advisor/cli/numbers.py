"""argparse types for numbers a person types: whole or finite, within bounds that the message names.

argparse's own `type=int`/`type=float` take 10^30, `inf` and `nan`; these refuse them where the flag
is read, so the error names the flag (one line, exit 2).
"""

from __future__ import annotations

import argparse
import math
from typing import Callable


def whole(low: int, high: int) -> Callable[[str], int]:
    """A whole number from `low` to `high`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"invalid value '{text}': expected a whole number from {low} to {high}")
        return value

    return parse


def finite(low: float, high: float, low_included: bool) -> Callable[[str], float]:
    """A finite number above `low` (or equal to it, when `low_included`) and at most `high`."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        above = value >= low if low_included else value > low
        if not (above and value <= high):  # NaN fails every comparison; inf fails the upper bound
            relation = ">=" if low_included else ">"
            raise argparse.ArgumentTypeError(f"invalid value '{text}': expected a number {relation} {low:g} "
                                             f"and <= {high:g}")
        return value

    return parse
