"""The preflight report: its data model (what `--json` prints) and the human rendering.

`preflight.run_preflight` fills a `PreflightReport`; `advisor execute`
refuses to train when `ok` is false, and `advisor execute --dry-run` prints it
with `render_preflight` (or as JSON). Pure pydantic and rich: no torch here.

The preview keeps the loss's view of each example twice: as `spans` (text and
whether it carries loss, for styling) and as `text_marked`, one string where
every no-loss span is wrapped in `[no loss: ...]`, so the marking survives
JSON and a pipe. On a terminal the no-loss spans are also dimmed and the
loss-carrying ones coloured.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.text import Text

from ..data import RecordError
from ..data.report import TokenLengths
from .models import LISTED_LINES, Downshift, TrainShape

NO_LOSS_OPEN, NO_LOSS_CLOSE = "[no loss: ", "]"


class PreflightModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Span(PreflightModel):
    text: str
    loss: bool = Field(description="the span's tokens carry loss (their label is not -100)")


class PreviewRow(PreflightModel):
    """One example decoded exactly as the loss sees it (after truncation)."""

    line: int
    text_marked: str = Field(description="the decoded tokens, no-loss spans wrapped in '[no loss: ...]'")
    spans: list[Span]
    cut_tokens: int = Field(0, description="tokens beyond seq_len that the run never sees")
    label: Optional[str] = Field(None, description="classification: the class the row is trained to predict")
    rejected_spans: list[Span] = Field(
        default_factory=list, description="preference pairs: the prompt and the rejected answer (`spans`: the chosen)"
    )
    rejected_marked: Optional[str] = None


class MemoryCheck(PreflightModel):
    """advisor.estimate recomputed at the data's real lengths, for the plan's micro-batch and method."""

    micro_batch: int
    p95_tokens: int
    max_tokens: int
    at_p95_gib: float = Field(description="predicted peak (max_memory_allocated) for a batch of p95-length rows")
    at_max_gib: float = Field(description="predicted peak for the longest micro-batch")
    overhead_gib: float = Field(description="CUDA context and allocator slack on top of at_max_gib")
    device_gib: Optional[float] = Field(None, description="the plan's device memory")
    fits_longest: Optional[bool] = Field(None, description="at_max_gib + overhead_gib fits device_gib")


class ProbeResult(PreflightModel):
    """One training step and one evaluation step on the longest micro-batch, before the run."""

    ran: bool
    skipped: Optional[str] = Field(None, description="why the probe did not run")
    device: Optional[str] = None
    seconds: Optional[float] = Field(None, description="wall time of every attempt, model loads included")
    rows: int = Field(0, description="rows in the probed micro-batch")
    tokens: int = Field(0, description="length of the probed micro-batch (its longest row)")
    shape: Optional[TrainShape] = Field(None, description="the shape that ran: the run can start from it")
    downshifts: list[Downshift] = Field(default_factory=list)
    peak_gib: Optional[float] = Field(None, description="CUDA: torch.cuda.max_memory_allocated() of the probe")
    estimate_gib: Optional[float] = Field(None, description="the estimate for the probed shape and length")
    error: Optional[str] = None


class PreflightReport(PreflightModel):
    ok: bool = Field(description="false: the run must not start (see errors and probe.error)")
    data: str
    data_format: str
    records: int
    seq_len: int
    errors: list[RecordError] = Field(default_factory=list)
    truncated_rows: int = Field(0, description="rows longer than seq_len, cut on the right")
    truncated_lines: list[int] = Field(default_factory=list, description=f"the first {LISTED_LINES} of them")
    rows_without_loss: int = Field(0, description="rows left with no token that carries loss (each one an error)")
    rows_left_out: int = Field(0, description="rows whose prompt alone fills seq_len, left out of the run "
                                              "(plan.json training.data.long_prompts \"drop\"; not errors)")
    left_out_lines: list[int] = Field(default_factory=list, description=f"the first {LISTED_LINES} of them")
    token_lengths: Optional[TokenLengths] = Field(None, description="tokens per trained row, after truncation")
    memory: Optional[MemoryCheck] = None
    preview: list[PreviewRow] = Field(default_factory=list)
    probe: ProbeResult
    warnings: list[str] = Field(default_factory=list)


def mark(spans: list[Span]) -> str:
    """The plain-text view: no-loss spans wrapped in markers, loss spans as they are."""
    return "".join(span.text if span.loss else f"{NO_LOSS_OPEN}{span.text}{NO_LOSS_CLOSE}" for span in spans)


def render_preflight(report: PreflightReport, console: Console) -> None:
    """Print the report for a person on a rich Console (styles only where it is a terminal)."""

    def line(label: str, body: str, style: str = "") -> None:
        console.print(Text(f"{label:<10} ", style="bold") + Text(body, style=style), highlight=False, soft_wrap=True)

    problems = report.rows_without_loss + bool(report.probe.error)
    ready = report.records - report.rows_left_out
    verdict = (f"ok: {ready} rows ready to train" + (f" ({report.rows_left_out} left out)" if report.rows_left_out else "")
               if report.ok else f"REFUSED: {problems} error(s), nothing will train")
    line("preflight", f"{verdict} ('{report.data}', {report.data_format}, seq_len {report.seq_len})",
         "green" if report.ok else "bold red")
    line("tokens", _tokens_text(report))
    if report.memory is not None:
        line("memory", _memory_text(report.memory), "" if report.memory.fits_longest is not False else "yellow")
    for index, text in enumerate(_probe_text(report.probe)):
        line("probe" if index == 0 else "", text, "red" if report.probe.error and index == 0 else "")
    for row in report.preview:
        line("preview", f"line {row.line}, as the loss sees it ({NO_LOSS_OPEN.strip()} ...] = label -100):")
        console.print(_styled(row.spans, row), highlight=False, soft_wrap=True)
        if row.rejected_spans:
            console.print(Text("rejected: ", style="bold") + _styled(row.rejected_spans, row), highlight=False,
                          soft_wrap=True)
    for error in report.errors:
        console.print(Text(f"error: line {error.line}: {error.message}", style="red"), highlight=False, soft_wrap=True)
    if report.rows_without_loss > len(report.errors):
        console.print(Text(f"error: {report.rows_without_loss - len(report.errors)} more row(s) without loss",
                           style="red"), highlight=False)
    if report.probe.error:
        console.print(Text(f"error: probe: {report.probe.error}", style="red"), highlight=False, soft_wrap=True)
    for warning in report.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"), highlight=False, soft_wrap=True)


def _tokens_text(report: PreflightReport) -> str:
    parts = []
    if report.token_lengths is not None:
        lengths = report.token_lengths
        parts.append(f"per trained row p50 {lengths.p50}, p95 {lengths.p95}, max {lengths.max} (mean {lengths.mean:g})")
    if report.truncated_rows:
        more = ", ..." if report.truncated_rows > len(report.truncated_lines) else ""
        lines = ", ".join(str(number) for number in report.truncated_lines)
        parts.append(f"{report.truncated_rows} row(s) cut at seq_len {report.seq_len} (line {lines}{more})")
    else:
        parts.append(f"no row longer than seq_len {report.seq_len}")
    if report.rows_without_loss:
        parts.append(f"{report.rows_without_loss} row(s) left with no token that carries loss")
    return "; ".join(parts)


def _memory_text(memory: MemoryCheck) -> str:
    text = (f"estimate for micro-batch {memory.micro_batch}: {_size(memory.at_p95_gib)} at p95 ({memory.p95_tokens} "
            f"tokens), {_size(memory.at_max_gib)} at max ({memory.max_tokens})")
    if memory.device_gib is None:
        return text
    verdict = "the longest batch fits" if memory.fits_longest else "the longest batch does NOT fit"
    return (f"{text}; {_size(memory.at_max_gib + memory.overhead_gib)} with CUDA context and allocator slack, "
            f"of the plan's {memory.device_gib:g} GiB: {verdict}")


def _size(gib: float) -> str:
    return f"{gib:.2f} GiB" if gib >= 0.1 else f"{gib * 1024:.1f} MiB"


def _probe_text(probe: ProbeResult) -> list[str]:
    if not probe.ran:
        return [f"not run: {probe.skipped}"]
    what = f"training step + evaluation on the {probe.rows} longest row(s) ({probe.tokens} tokens) on {probe.device}"
    if probe.error:
        return [f"{what} failed: {probe.error}"]
    shape = probe.shape
    lines = [f"{what}: ok in {probe.seconds:.1f} s; the run starts at micro-batch {shape.batch_size} x "
             f"{shape.gradient_accumulation_steps} accumulation, gradient checkpointing "
             f"{'on' if shape.gradient_checkpointing else 'off'}"]
    for shift in probe.downshifts:
        lines.append(f"out of memory at micro-batch {shift.before.batch_size}"
                     f"{' with checkpointing' if shift.before.gradient_checkpointing else ''}: downshifted")
    if probe.peak_gib is not None:
        lines.append(f"peak {_size(probe.peak_gib)} allocated (estimate {_size(probe.estimate_gib)})")
    return lines


def _styled(spans: list[Span], row: PreviewRow) -> Text:
    text = Text()
    for span in spans:
        if span.loss:
            text.append(span.text, style="green")
        else:
            text.append(NO_LOSS_OPEN, style="dim")
            text.append(span.text, style="dim")
            text.append(NO_LOSS_CLOSE, style="dim")
    if row.label is not None:
        text.append(f"  => label '{row.label}'", style="green")
    if row.cut_tokens:
        text.append(f"  [cut at seq_len: {row.cut_tokens} more tokens never seen]", style="yellow")
    return text
