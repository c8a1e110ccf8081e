"""Leakage between the data and a held-out file: the same question on both sides inflates evaluation.

`validate.py` calls `find_leakage` for `advisor validate DATA --against TEST`.
A record of the held-out file leaks when its input text (classification and
text: the text; alpaca: instruction + input; chat: the messages before the
last answer) matches a record of the data after normalisation (exact), or
is a near-duplicate of one (Jaccard of 5-byte shingles >= 0.8, see
similarity.py).
"""

from __future__ import annotations

from .load import LoadedData
from .records import input_text
from .report import Leakage, LinePair
from .similarity import matches, normalise_text


def find_leakage(data: LoadedData, against: LoadedData, max_listed: int = 50) -> Leakage:
    first_line: dict[str, int] = {}
    for record, line in zip(data.records, data.lines):
        first_line.setdefault(normalise_text(input_text(data.format, record)), line)
    exact: list[LinePair] = []
    unmatched: list[tuple[str, int]] = []
    for record, line in zip(against.records, against.lines):
        text = normalise_text(input_text(against.format, record))
        if text in first_line:
            exact.append(LinePair(first_line=first_line[text], line=line))
        else:
            unmatched.append((text, line))
    indexed = list(first_line)
    near_matches = matches(indexed, [text for text, _ in unmatched]) if unmatched and indexed else {}
    near = [
        LinePair(first_line=first_line[indexed[source]], line=unmatched[query][1])
        for query, source in sorted(near_matches.items())
    ]
    return Leakage(
        against=against.path,
        against_records=len(against.records),
        exact=len(exact),
        near=len(near),
        examples=sorted(exact + near, key=lambda pair: pair.line)[:max_listed],
    )
