"""Durations and sizes as a person reads them in a plan: never "~0.0 h", never a terabyte in megabytes."""

from __future__ import annotations


def about_hours(hours: float, digits: int = 1) -> str:
    """'~2.1 h' (`digits` decimals); a time that rounds to 0 h in minutes ('~3 min'), or 'under a minute'."""
    if round(hours, digits) > 0:
        return f"~{hours:,.{digits}f} h"
    minutes = hours * 60
    return f"~{minutes:.0f} min" if round(minutes) >= 1 else "under a minute"


def hours_span(low: float, high: float, digits: int = 2) -> str:
    """'1.94-3.38 h' (`digits` decimals); in minutes where the low end rounds to 0 h ('2-5 min')."""
    if round(low, digits) > 0:
        return f"{low:,.{digits}f}-{high:,.{digits}f} h"
    return f"{low * 60:.0f}-{high * 60:.0f} min"


def megabytes(mb: float) -> str:
    """'84.0 MB', '282.2 GB', '11.3 TB' (decimal units, as disks are sold)."""
    for unit, size in (("TB", 1e6), ("GB", 1e3)):
        if mb >= size:
            return f"{mb / size:,.1f} {unit}"
    return f"{mb:,.1f} MB"
