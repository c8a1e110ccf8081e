"""The preflight: what a run would train on and whether its longest batch runs, checked in seconds.

`advisor execute` calls `run_preflight` after `prepared.prepare` and before the
first training step, and refuses to train when the report is not ok;
`advisor execute --dry-run` prints the report (preflight_report.py renders it).
It checks, with the model's real tokenizer and prompt/chat template (the very
encoding the run uses, `tasks.encode_records`):

- per row, the tokens that carry loss after truncation at the plan's seq_len:
  a row left with none is an error naming its line (the run would silently
  drop it, or train on nothing: "all labels are -100"), except one whose prompt
  alone fills seq_len where plan.json training.data.long_prompts is "drop": the
  run leaves those out, and a warning counts them with their lines; truncated rows are counted;
- two rows decoded exactly as the loss sees them, no-loss spans marked;
- the token-length distribution, and `advisor.estimate` recomputed at the real
  p95 and max lengths for the plan's method, micro-batch and device;
- a probe: one training step (forward, backward, optimizer step) and one
  evaluation step on the micro-batch of the longest rows, on the device the run
  uses, with a freshly loaded model that is thrown away afterwards (the random
  number generators are restored, so the run is the same with or without it).
  An out-of-memory error downshifts the shape as the run would (downshift.py)
  and the report names the shape that ran, for the run to start from.

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import gc
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional

from ..data import RecordError
from ..data.report import TokenLengths
from ..estimate.sharding import OFFLOADS
from ..knowledge_base import resolve_gpu, resolve_model
from ..manager import footprint_of
from ..models import Estimate
from .downshift import next_shape
from .models import Downshift, TrainShape
from .preflight_report import (
    LISTED_LINES,
    MemoryCheck,
    PreflightReport,
    PreviewRow,
    ProbeResult,
    Span,
    mark,
    render_preflight,
)
from .prepared import Prepared
from .tasks import IGNORE_INDEX, encode_records

__all__ = ["run_preflight", "render_preflight", "PreflightReport"]

#: Rows previewed, and the most rows without loss listed as errors (the count is always complete).
PREVIEW_ROWS = 2
LISTED_ERRORS = 50
#: A sequence length no row reaches: encode without truncating.
UNTRUNCATED = 2**31
GIB = 1024**3


class RowView(NamedTuple):
    """One record as the run sees it: its tokens after truncation and what truncation took."""

    ids: list[int]
    labels: Any  # causal LM: one label per token (-100: no loss); classification: the class id
    cut: int  # tokens beyond seq_len
    full_length: int
    first_loss: Optional[int]  # causal LM: position of the first loss token before truncation (None: no such token)


def run_preflight(prepared: Prepared, probe: bool = True) -> PreflightReport:
    """Check `prepared` (from `prepared.prepare`); `probe=False` skips the model (data and estimates only)."""
    seq_len = prepared.hp.seq_len
    rows = row_views(prepared)
    lines = prepared.data.lines
    dropped = prepared.encoded.dropped  # the run's encoding drops exactly the rows left without loss
    refused = prepared.encoded.refused  # rows whose loss span the chat template hides: why, per row
    left_out = (prompt_filled(rows, dropped, refused, seq_len)
                if prepared.request.plan.training.data.long_prompts == "drop" else [])
    leaving = set(left_out)
    without_loss = [index for index in dropped if index not in leaving]
    errors = [RecordError(line=lines[index], message=refused.get(index) or _no_loss_message(rows[index], seq_len))
              for index in without_loss[:LISTED_ERRORS]]
    truncated = [index for index, row in enumerate(rows) if row.cut]
    trained = [feature for feature in prepared.encoded.features if feature is not None]
    lengths = token_lengths([len(feature["input_ids"]) for feature in trained])
    memory = memory_check(prepared, lengths) if lengths else None
    left_out_lines = [lines[index] for index in left_out]
    cut_but_trained = [index for index in truncated if prepared.encoded.features[index] is not None]
    warnings = _left_out_warning(left_out_lines, len(rows), seq_len) + _warnings(
        prepared, len(rows), cut_but_trained, memory)
    if not probe:
        result = ProbeResult(ran=False, skipped="not asked for")
    elif errors:
        result = ProbeResult(ran=False, skipped="the data has errors: nothing will train")
    else:
        result = probe_longest_batch(prepared, trained)
        if result.downshifts and not result.error:
            warnings.append(f"the plan's shape ran out of memory in the probe; the run starts at micro-batch "
                            f"{result.shape.batch_size} x {result.shape.gradient_accumulation_steps} accumulation, "
                            f"gradient checkpointing {'on' if result.shape.gradient_checkpointing else 'off'}")
    return PreflightReport(
        ok=not errors and result.error is None, data=prepared.request.data, data_format=prepared.data.format,
        records=len(rows), seq_len=seq_len, errors=errors, truncated_rows=len(truncated),
        truncated_lines=[lines[index] for index in truncated[:LISTED_LINES]], rows_without_loss=len(without_loss),
        rows_left_out=len(left_out), left_out_lines=left_out_lines[:LISTED_LINES],
        token_lengths=lengths, memory=memory,
        preview=[preview_row(prepared, index, rows[index]) for index in range(min(PREVIEW_ROWS, len(rows)))],
        probe=result, warnings=warnings,
    )


# -- the data as the loss sees it ------------------------------------------------------
def row_views(prepared: Prepared) -> list[RowView]:
    """Every record's tokens after truncation, from the run's own encoding.

    Only rows the encoding dropped or that reach seq_len can have been cut: those
    are encoded again without truncation to see what was cut and where the loss began.
    """
    seq_len, features = prepared.hp.seq_len, prepared.encoded.features
    suspects = [index for index, feature in enumerate(features)
                if feature is None or len(feature["input_ids"]) >= seq_len]
    label2id = {name: index for index, name in enumerate(prepared.labels)}
    full = encode_records([prepared.data.records[index] for index in suspects], prepared.data.format,
                          prepared.tokenizer, UNTRUNCATED, label2id).features
    untruncated = dict(zip(suspects, full))
    views = []
    for index, feature in enumerate(features):
        whole = untruncated.get(index, feature)
        if whole is None:  # nothing carries loss even before truncation
            views.append(RowView(ids=[], labels=[], cut=0, full_length=0, first_loss=None))
            continue
        labels = whole["labels"]
        first_loss = (next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), None)
                      if isinstance(labels, list) else None)
        # A dropped causal-LM row: truncation is a cut on the right, as encode_records makes it.
        seen = feature or {"input_ids": whole["input_ids"][:seq_len], "labels": labels[:seq_len]}
        full_length = len(whole["input_ids"])
        views.append(RowView(ids=seen["input_ids"], labels=seen["labels"], cut=max(0, full_length - seq_len),
                             full_length=full_length, first_loss=first_loss))
    return views


def prompt_filled(rows: list[RowView], dropped: list[int], refused: dict[int, str], seq_len: int) -> list[int]:
    """The dropped rows that had loss before truncation: their prompt alone fills seq_len (the rows
    training.data.long_prompts "drop" leaves out). A row with no response, or one the chat template hides, is not."""
    return [index for index in dropped
            if index not in refused and rows[index].first_loss is not None and rows[index].first_loss >= seq_len]


def _no_loss_message(row: RowView, seq_len: int) -> str:
    if row.first_loss is None:
        return "no token carries loss: the row has nothing to learn (no response or assistant turn)"
    return (f"no token carries loss after truncation at seq_len {seq_len}: the prompt takes {row.first_loss} "
            f"of its {row.full_length} tokens, so the response is cut away entirely; raise seq_len above "
            f"{row.first_loss} (`advisor plan --seq-len`), shorten the prompt, or set plan.json "
            "training.data.long_prompts to \"drop\" to train without such rows")


def _left_out_warning(lines: list[int], records: int, seq_len: int) -> list[str]:
    if not lines:
        return []
    listed = ", ".join(str(line) for line in lines[:LISTED_LINES]) + (", ..." if len(lines) > LISTED_LINES else "")
    return [f"{len(lines)} of {records} rows are left out: the prompt alone fills seq_len {seq_len}, so truncation "
            f"leaves no response to learn from (line {listed}); plan.json training.data.long_prompts is \"drop\", "
            f"so the run trains on the other {records - len(lines)} (a longer seq_len keeps them; \"refuse\" "
            "stops the run instead)"]


def token_lengths(lengths: list[int]) -> Optional[TokenLengths]:
    """Nearest-rank percentiles (as the data toolkit's validator reports them)."""
    import numpy as np

    if not lengths:
        return None

    def rank(quantile: float) -> int:
        return int(np.percentile(lengths, quantile, method="inverted_cdf"))

    return TokenLengths(p50=rank(50), p95=rank(95), max=max(lengths), mean=round(sum(lengths) / len(lengths), 1),
                        method="tokenizer")


def preview_row(prepared: Prepared, index: int, row: RowView) -> PreviewRow:
    line = prepared.data.lines[index]
    if prepared.kind == "classification":
        spans = [Span(text=prepared.tokenizer.decode(row.ids), loss=False)]
        return PreviewRow(line=line, text_marked=mark(spans), spans=spans, cut_tokens=row.cut,
                          label=prepared.labels[row.labels])
    feature = prepared.encoded.features[index]
    if prepared.kind == "preference" and feature is not None:
        chosen, rejected = (_answer_spans(prepared.tokenizer, feature["prompt_ids"], feature[key])
                            for key in ("chosen_ids", "rejected_ids"))
        return PreviewRow(line=line, text_marked=mark(chosen), spans=chosen, cut_tokens=row.cut,
                          rejected_spans=rejected, rejected_marked=mark(rejected))
    spans = decoded_spans(prepared.tokenizer, row.ids, [label != IGNORE_INDEX for label in row.labels])
    return PreviewRow(line=line, text_marked=mark(spans), spans=spans, cut_tokens=row.cut)


def _answer_spans(tokenizer: Any, prompt: list[int], answer: list[int]) -> list[Span]:
    """A preference answer after its prompt: the prompt carries no loss, the answer does."""
    return decoded_spans(tokenizer, prompt + answer, [False] * len(prompt) + [True] * len(answer))


def decoded_spans(tokenizer: Any, ids: list[int], loss: list[bool]) -> list[Span]:
    """Runs of tokens that do or do not carry loss, decoded so that the spans join into the whole text.

    Each span is what its tokens add to the decoded prefix (sentencepiece and
    word-level decoders put spaces between tokens that decoding each run alone would lose).
    """
    spans: list[Span] = []
    decoded, start = "", 0
    for end in range(1, len(ids) + 1):
        if end < len(ids) and loss[end] == loss[start]:
            continue
        longer = tokenizer.decode(ids[:end])
        text = longer[len(decoded):] if longer.startswith(decoded) else tokenizer.decode(ids[start:end])
        spans.append(Span(text=text, loss=loss[start]))
        decoded, start = longer, end
    return spans


# -- memory ---------------------------------------------------------------------------
def estimate_at(prepared: Prepared, batch_size: int, seq_len: int, gradient_checkpointing: bool,
                precision: Optional[str] = None) -> Estimate:
    """advisor.estimate for the plan's model, method and devices at this shape (the plan's precision by default):
    its nodes, sharding, offload and AdamW kernel as the plan's estimate.config has them, the run's accumulation."""
    from ..estimate import EstimateRequest, estimate

    plan = prepared.request.plan
    profile = plan.profile
    architecture = resolve_model(profile.model).architecture
    planned = plan.estimate.config if plan.estimate else {}
    sharding = planned.get("sharding", "ddp" if profile.num_gpus * profile.num_nodes > 1 else "none")
    request = EstimateRequest(
        architecture=architecture, footprint=footprint_of(prepared.method, architecture, prepared.method_hp),
        precision=precision or plan.training.precision, batch_size=batch_size, seq_len=seq_len,
        gradient_checkpointing=gradient_checkpointing, optimizer=prepared.hp.optimizer,
        adamw_implementation=planned.get("adamw_implementation", "fused"),
        num_gpus=profile.num_gpus, num_nodes=profile.num_nodes,
        sharding=sharding, offload=offload_as_launched(sharding, planned.get("offload", "none")),
        gradient_accumulation_steps=prepared.hp.gradient_accumulation_steps,
        head="classification" if prepared.kind == "classification" else "lm", num_labels=len(prepared.labels) or 2,
        gpu=resolve_gpu(profile.gpu),
        device_memory_gib=plan.estimate.device_memory_gib if plan.estimate else profile.gpu_memory_gib,
        fused_cross_entropy=bool(prepared.hp.fused_cross_entropy) and prepared.kind == "causal_lm",
    )
    return estimate(request)


def offload_as_launched(sharding: str, offload: str) -> str:
    """What the engine offloads of a (hand-edited) plan's offload it lacks, as accelerate.cluster_config launches
    it: FSDP2 offloads parameters with the optimizer, ZeRO-2 only the optimizer, data parallelism nothing."""
    if sharding in OFFLOADS[offload]:
        return offload
    return {"fsdp": "parameters", "hybrid": "parameters", "zero2": "optimizer"}.get(sharding, "none")


def memory_check(prepared: Prepared, lengths: TokenLengths) -> MemoryCheck:
    hp = prepared.hp
    typical = estimate_at(prepared, hp.batch_size, lengths.p95, hp.gradient_checkpointing)
    longest = estimate_at(prepared, hp.batch_size, lengths.max, hp.gradient_checkpointing)
    return MemoryCheck(
        micro_batch=hp.batch_size, p95_tokens=lengths.p95, max_tokens=lengths.max,
        at_p95_gib=typical.memory.peak_gib, at_max_gib=longest.memory.peak_gib,
        overhead_gib=longest.memory.overhead_gib, device_gib=longest.device_memory_gib, fits_longest=longest.fits,
    )


def _warnings(prepared: Prepared, records: int, cut_but_trained: list[int], memory: Optional[MemoryCheck]) -> list[str]:
    warnings = []
    if memory is not None and memory.fits_longest is False:
        warnings.append(
            f"the longest micro-batch ({memory.micro_batch} rows of {memory.max_tokens} tokens) needs about "
            f"{memory.at_max_gib + memory.overhead_gib:.1f} GiB of the plan's {memory.device_gib:g} GiB device: "
            "expect an out-of-memory downshift there, or plan a smaller batch_size or seq_len")
    if cut_but_trained:
        ending = ("(its end-of-sequence token included) is never trained" if prepared.kind == "causal_lm"
                  else "is never seen")
        warnings.append(
            f"{len(cut_but_trained)} of {records} rows are longer than seq_len {prepared.hp.seq_len}: the end of each "
            f"{ending}; a longer seq_len keeps them whole")
    return warnings


# -- the probe ------------------------------------------------------------------------
def probe_longest_batch(prepared: Prepared, features: list[dict[str, Any]]) -> ProbeResult:
    """One training and one evaluation step on the longest rows' features; downshift on out-of-memory."""
    import torch

    longest = sorted(features, key=lambda feature: len(feature["input_ids"]), reverse=True)
    shape: TrainShape = prepared.initial_shape()
    downshifts: list[Downshift] = []
    started = time.monotonic()
    with _random_state_kept():
        while True:
            batch = longest[: shape.batch_size]
            try:
                peak = _one_step(prepared, shape, batch)
                break
            except torch.OutOfMemoryError as error:
                _release_memory()
                after = next_shape(shape)
                message = _first_line(error) or "out of memory"
                if after is None:
                    return _probe_result(prepared, shape, batch, started, downshifts, error=(
                        f"out of memory even at micro-batch 1 with gradient checkpointing ({message}); "
                        "plan a smaller seq_len or a lighter method"))
                downshifts.append(Downshift(run="preflight", at_step=0, before=shape, after=after, error=message))
                shape = after
            except Exception as error:  # the failure the run would meet at its first step, now and in one line
                _release_memory()
                return _probe_result(prepared, shape, batch, started, downshifts,
                                     error=f"{type(error).__name__}: {_first_line(error)}".rstrip(": "))
    return _probe_result(prepared, shape, batch, started, downshifts, peak=peak)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else ""


def _probe_result(
    prepared: Prepared, shape: TrainShape, batch: list[dict[str, Any]], started: float, downshifts: list[Downshift],
    peak: Optional[float] = None, error: Optional[str] = None,
) -> ProbeResult:
    tokens = max(len(feature["input_ids"]) for feature in batch)
    estimated = estimate_at(prepared, len(batch), tokens, shape.gradient_checkpointing, prepared.precision.recipe)
    return ProbeResult(
        ran=True, device=prepared.device.name, seconds=round(time.monotonic() - started, 2), rows=len(batch),
        tokens=tokens, shape=shape, downshifts=downshifts, peak_gib=None if peak is None else round(peak, 3),
        estimate_gib=estimated.memory.peak_gib, error=error,
    )


def _one_step(prepared: Prepared, shape: TrainShape, batch: list[dict[str, Any]]) -> Optional[float]:
    """Train one step and evaluate once with the run's own Trainer setup; CUDA: the peak GiB allocated."""
    import torch
    from transformers import EarlyStoppingCallback

    from .callbacks import RunProgress, SaveOnInterrupt
    from .local import make_trainer
    from .trainer_setup import Schedule

    cuda = prepared.device.kind == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    # Accumulation does not change a step's peak; one micro-batch is the whole probe.
    single = shape.model_copy(update={"gradient_accumulation_steps": 1})
    schedule = Schedule(steps_per_epoch=1, total_steps=1, cadence=1, evaluate=False)
    with tempfile.TemporaryDirectory(prefix="advisor-preflight-") as scratch:
        trainer, _ = make_trainer(prepared, "preflight", single, schedule, Path(scratch), batch, batch)
        try:
            # No progress bar or progress.jsonl line, no Ctrl-C checkpoint, no checkpoint at all: one step.
            for callback in (RunProgress, SaveOnInterrupt, EarlyStoppingCallback):
                trainer.remove_callback(callback)
            trainer.args.max_steps = 1
            trainer.args.set_save(strategy="no")
            trainer.train()
            trainer.evaluate()
            return torch.cuda.max_memory_allocated() / GIB if cuda else None
        finally:
            del trainer
            _release_memory()


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """The probe's Trainer seeds and draws; the run must start from the same random state as without it."""
    import random

    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
