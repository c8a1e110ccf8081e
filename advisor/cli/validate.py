"""`advisor validate DATA`: check a data file before anything trains (CONTRACT.md `advisor validate`).

Exit 0 when every record is valid, 1 when some are not (each listed with its
line, up to --max-listed, with the total), 2 when the file cannot be read.
The report itself comes from advisor.data.validate_file; this module parses
flags, loads a tokenizer when asked, and prints (JSON or a rich report).
`add_data_arguments` is shared with `advisor split`.
"""

from __future__ import annotations

import argparse
from typing import Callable

from ..errors import EXIT_NO, EXIT_OK
from ..data.formats import FORMATS
from ..documents import print_json
from ..models import MAX_SEQ_LEN
from .numbers import whole

FORMAT_HELP = """\
formats (--format auto detects them from the column names):
  alpaca          instruction, input, output (also prompt/question + response/completion/answer).
                  Nested self-instruct seed tasks {"instruction", "instances": [{"input", "output"}, ...]}
                  become one record per instance (the task's instruction with that input and output).
  chat            messages: [{role, content}] with roles system, user, assistant, tool;
                  ShareGPT conversations: [{from, value}] with human -> user, gpt -> assistant.
  classification  a text column and a label column (auto: label, labels, category, intent, class, target).
  text            a text column (auto: text, sentence, content, utterance, query, question, review, document).
files: .jsonl/.ndjson, .json (an array or {"data": [...]}), .csv, .tsv, .parquet, or a directory
(its train.* file, else every supported file). Lines: the file line (CSV: the header is line 1),
or the element number in a JSON array, or the row number in Parquet.
"""

LABELS_SHOWN = 10
MAX_LISTED = 10**9


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """DATA and the flags that say how to read it (validate and split share them)."""
    parser.add_argument("data", metavar="DATA", help="a data file, or a directory holding train.*")
    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS),
                        help="the record format (default: auto-detect from the columns)")
    parser.add_argument("--text-column", metavar="C", help="the column holding the text (classification, text)")
    parser.add_argument("--label-column", metavar="C", help="the column holding the label (classification)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a data file: bad records by line, statistics, duplicates, leakage",
        description="Check a data file before training: every bad record with its line number, label "
        "distribution, duplicates and near-duplicates, conflicting labels, token lengths, and leakage "
        "against a held-out file.",
        epilog=FORMAT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(parser)
    parser.add_argument("--seq-len", type=whole(1, MAX_SEQ_LEN), metavar="N", help="count the records longer than N tokens (truncated in training)")
    parser.add_argument("--against", metavar="TEST_FILE", help="a held-out file: report its records that also occur in DATA")
    parser.add_argument("--tokenizer", metavar="MODEL_ID_OR_DIR",
                        help="count tokens with this model's tokenizer (a catalog id or a local directory; offline); "
                        "default: estimate ceil(UTF-8 bytes / 4)")
    parser.add_argument("--max-listed", type=whole(0, MAX_LISTED), default=50, metavar="N", help="list at most N bad records (default 50)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..data import validate_file

    report = validate_file(
        args.data,
        format=args.format,
        text_column=args.text_column,
        label_column=args.label_column,
        seq_len=args.seq_len,
        tokenizer=_token_counter(args.tokenizer) if args.tokenizer else None,
        against=args.against,
        max_listed=args.max_listed,
    )
    if args.json:
        print_json(report)
    else:
        print_report(report)
    return EXIT_OK if report.ok else EXIT_NO


def _token_counter(model: str) -> Callable[[str], int]:
    """The model's tokenizer.json through `tokenizers` (what `plan --data` counts with), else transformers."""
    from ..data import model_token_counter

    counter = model_token_counter(model)
    if counter is not None:
        return counter
    from ..backends.loading import token_counter

    return token_counter(model)


def print_report(report) -> None:
    """The human report: summary, errors by line, warnings, labels, lengths, duplicates, leakage."""
    from rich.console import Console

    console = Console(highlight=False)
    _print_summary_and_errors(console, report)
    _print_warnings(console, report.warnings)
    _print_labels(console, report.stats)
    _print_measures(console, report.stats)


def _print_summary_and_errors(console, report) -> None:
    from rich.table import Table
    from rich.text import Text

    mapping = ", ".join(f"{field}={column!r}" for field, column in report.mapping.items())
    console.print(Text.assemble(("advisor validate ", "bold"), report.path))
    console.print(f"  format {report.format} ({mapping}); {report.records:,} records, {report.valid_records:,} valid", markup=False)
    if report.ok:
        console.print(Text("  ok: no bad records", style="green"))
        return
    console.print(Text(f"  {report.error_count:,} bad record{'s' if report.error_count > 1 else ''}", style="bold red"))
    table = Table("line", "problem", box=None, padding=(0, 2), header_style="bold")
    for error in report.errors:
        table.add_row(f"{error.file}:{error.line}" if error.file else str(error.line), Text(error.message))
    console.print(table)
    if report.error_count > len(report.errors):
        console.print(f"  ... and {report.error_count - len(report.errors):,} more (--max-listed N, or --json)", markup=False)


def _print_warnings(console, warnings: list[str]) -> None:
    from rich.text import Text

    if warnings:
        console.print(Text("warnings", style="bold yellow"))
    for warning in warnings:
        console.print(Text(f"  - {warning}"))


def _print_labels(console, stats) -> None:
    from rich.table import Table
    from rich.text import Text

    if not stats.labels:
        return
    ratio = f", imbalance ratio {stats.imbalance_ratio:g}" if stats.imbalance_ratio else ""
    console.print(Text(f"labels: {len(stats.labels)}{ratio}", style="bold"))
    table = Table(box=None, padding=(0, 2), show_header=False)
    largest = max(stats.labels.values())
    for label, count in list(stats.labels.items())[:LABELS_SHOWN]:
        table.add_row(Text(label), f"{count:,}", "#" * max(1, round(20 * count / largest)))
    console.print(table)
    if len(stats.labels) > LABELS_SHOWN:
        smallest = list(stats.labels.values())[-1]
        console.print(f"  ... {len(stats.labels) - LABELS_SHOWN} more (smallest: {smallest:,})", markup=False)


def _print_measures(console, stats) -> None:
    lines = []
    if stats.token_lengths:
        lengths = stats.token_lengths
        how = "tokenizer" if lengths.method == "tokenizer" else "estimated as ceil(UTF-8 bytes / 4)"
        line = f"tokens per record ({how}): p50 {lengths.p50}, p95 {lengths.p95}, max {lengths.max}, mean {lengths.mean}"
        if lengths.prompt_max is not None:
            line += f"; longest prompt {lengths.prompt_max}"
        if stats.seq_len is not None:
            line += f"; {stats.truncated_at_seq_len:,} longer than --seq-len {stats.seq_len}"
        lines.append(line)
    lines.append(f"duplicates: {stats.duplicates:,} exact, {stats.near_duplicates:,} near; "
                 f"conflicting labels: {stats.conflicting_labels:,}")
    if stats.duplicates or stats.near_duplicates or stats.leakage:
        lines.append("  (exact: the same text once case, punctuation and spacing are ignored; "
                     "near: Jaccard >= 0.8 on 5-character shingles)")
    if stats.leakage:
        leak = stats.leakage
        lines.append(f"leakage against {leak.against}: {leak.exact:,} exact, {leak.near:,} near of {leak.against_records:,} records")
    for line in lines:
        console.print(line, markup=False)
