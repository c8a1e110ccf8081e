"""The validation report: what `advisor validate --json` prints and what the planner reads.

`validate_file` fills these models; the CLI prints them (as JSON per
CONTRACT.md `advisor validate`, or as a rich report) and `profile_hints`
turns one into hints for `advisor plan --data`.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

DataFormat = Literal["alpaca", "chat", "text", "classification", "preference"]


class ReportModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordError(ReportModel):
    """One bad record: where it is and what is wrong with it."""

    line: int = Field(description="1-based line of the record in its file (JSON array: element index + 1; Parquet: row + 1)")
    message: str
    file: Optional[str] = Field(None, description="the file, when a directory of several files was read")


class TokenLengths(ReportModel):
    """Distribution of tokens per record (the whole training text of a record)."""

    p50: int
    p95: int
    max: int
    mean: float
    method: Literal["tokenizer", "estimate"] = Field(
        description="'tokenizer': counted with the model's tokenizer; 'estimate': ceil(UTF-8 bytes / 4)"
    )
    prompt_max: Optional[int] = Field(
        None, description="tokens of the longest prompt (alpaca, chat, preference): a seq_len at or below it "
        "leaves that record no response to learn from"
    )
    prompt_lengths: list[int] = Field(
        [], exclude=True, repr=False,
        description="every prompt's tokens, sorted (not printed): how many prompts a seq_len leaves no response",
    )

    def prompts_filling(self, seq_len: int) -> Optional[int]:
        """Records whose prompt alone takes `seq_len` tokens or more; None where the prompts were not kept."""
        if self.prompt_max is not None and not self.prompt_lengths:  # a report read back from its JSON
            return None
        return len(self.prompt_lengths) - bisect_left(self.prompt_lengths, seq_len)


class LinePair(ReportModel):
    """Two records that look alike: `line` repeats (or nearly repeats) `first_line`."""

    first_line: int
    line: int


class ConflictingLabel(ReportModel):
    """One text given different labels: label -> the lines that give it."""

    text: str
    labels: dict[str, list[int]]


class Leakage(ReportModel):
    """Records of the `--against` file that also occur in the data (exactly or nearly)."""

    against: str
    against_records: int
    exact: int = Field(description="against records whose normalised text occurs in the data")
    near: int = Field(description="against records not exact but with a near-duplicate (Jaccard >= threshold) in the data")
    examples: list[LinePair] = Field([], description="first_line: in the data; line: in the against file")


class PreferenceStats(ReportModel):
    """Preference pairs: pairs that prefer nothing, and whether "chosen" mostly means "longer"."""

    identical_pairs: int = Field(description="pairs whose chosen answer equals the rejected one")
    identical_lines: list[int] = Field([], description="their lines (at most max_listed)")
    chosen_longer_share: float = Field(description="share of pairs whose chosen answer has more characters")
    mean_chosen_chars: float
    mean_rejected_chars: float


class DataStats(ReportModel):
    """Statistics over the valid records."""

    labels: dict[str, int] = Field({}, description="label -> count, most frequent first")
    imbalance_ratio: Optional[float] = Field(None, description="largest class count / smallest class count")
    duplicates: int = Field(0, description="records whose normalised text (case, punctuation and spacing folded) "
                                           "repeats an earlier record's: the `exact` of leakage, within the data")
    duplicate_examples: list[LinePair] = []
    near_duplicates: int = Field(0, description="records not exact duplicates but with a near-duplicate earlier (Jaccard >= threshold)")
    near_duplicate_examples: list[LinePair] = []
    conflicting_labels: int = Field(0, description="normalised texts that carry more than one label")
    conflicting_examples: list[ConflictingLabel] = []
    token_lengths: Optional[TokenLengths] = None
    seq_len: Optional[int] = None
    truncated_at_seq_len: Optional[int] = Field(None, description="records longer than seq_len tokens")
    nothing_to_learn_at_seq_len: Optional[int] = Field(
        None, description="alpaca/chat records whose prompt alone fills seq_len, so truncation leaves no response to learn"
    )
    leakage: Optional[Leakage] = None
    preference: Optional[PreferenceStats] = None


class ValidationReport(ReportModel):
    """`advisor validate --json`: ok, format, record count, errors with lines, warnings, stats."""

    schema_version: int = 1
    ok: bool = Field(description="no record has an error")
    path: str
    format: DataFormat
    columns: list[str] = Field(description="the original column names")
    mapping: dict[str, str] = Field({}, description="normalised field -> original column")
    records: int = Field(description="records read, valid or not")
    valid_records: int
    error_count: int = Field(description="all bad records; `errors` lists at most max_listed of them")
    errors: list[RecordError]
    warnings: list[str]
    stats: DataStats
