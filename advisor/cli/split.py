"""`advisor split DATA --out DIR`: reproducible train/validation(/test) files or k folds (CONTRACT.md).

Classification data is stratified by its label unless --no-stratify or
--stratify-by names another column. Data with invalid records is refused
(exit 1) unless --drop-invalid; the manifest lists the dropped lines. The
work is done by advisor.data (split_records, write_split); this module maps
flags to calls and prints the result.
"""

from __future__ import annotations

from ..errors import EXIT_NO, UserError
from ..documents import print_json
from ..models import MAX_FOLDS, MAX_SEED
from .numbers import whole
from .validate import FORMAT_HELP, add_data_arguments

#: The flags recorded in manifest.json ("the exact arguments"); output-only flags are left out.
RECORDED = ("data", "out", "format", "text_column", "label_column", "validation_ratio", "test_ratio",
            "stratify_by", "no_stratify", "group_by", "kfold", "seed", "drop_invalid")


def register(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser(
        "split",
        help="write reproducible train/validation(/test) files or k folds, with a manifest",
        description="Split a data file into DIR/train.jsonl, validation.jsonl (and test.jsonl), or "
        "DIR/fold-N/{train,validation}.jsonl with --kfold, plus DIR/manifest.json (counts per split and "
        "label, sha256 of every file, the arguments). Rows are written as read (all columns), in input "
        "order: the same input, arguments and seed give byte-identical files. A nested seed task (alpaca "
        "`instances`) is written once per instance, holding only that instance.",
        epilog=FORMAT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (refused if it exists, unless --overwrite)")
    parser.add_argument("--validation-ratio", type=float, default=0.2, metavar="R", help="share for validation (default 0.2; ignored with --kfold)")
    parser.add_argument("--test-ratio", type=float, default=0.0, metavar="R", help="share held out as test.jsonl (default 0)")
    stratify = parser.add_mutually_exclusive_group()
    stratify.add_argument("--stratify-by", metavar="COLUMN", help="keep the share of each value of COLUMN equal across splits "
                          "(default: the label, for classification data)")
    stratify.add_argument("--no-stratify", action="store_true", help="do not stratify classification data by its label")
    parser.add_argument("--group-by", metavar="COLUMN", help="records with the same COLUMN value stay on one side (no group on both sides)")
    parser.add_argument("--kfold", type=whole(2, MAX_FOLDS), metavar="K", help="write K folds instead of one train/validation split")
    parser.add_argument("--seed", type=whole(0, MAX_SEED), default=42, help=f"random seed, 0 to {MAX_SEED} (default 42)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier split in DIR (refused when DIR holds files no split wrote, or the input)")
    parser.add_argument("--drop-invalid", action="store_true", help="leave invalid records out instead of refusing the data")
    parser.add_argument("--json", action="store_true", help="print manifest.json")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..data import load_records, split_records, write_split

    loaded = load_records(args.data, format=args.format, text_column=args.text_column, label_column=args.label_column)
    if loaded.errors and not args.drop_invalid:
        first = loaded.errors[0]
        raise UserError(
            f"{len(loaded.errors)} of {loaded.total} records of '{args.data}' are invalid (first: line {first.line}: "
            f"{first.message}); run `advisor validate {args.data}` for the list, fix them, or pass --drop-invalid",
            exit_code=EXIT_NO,
        )
    stratify_by = args.stratify_by
    if stratify_by is None and loaded.format == "classification" and not args.no_stratify:
        stratify_by = "label"
    for column in (stratify_by, args.group_by):
        if column:
            loaded.require_column(column)
    plan = split_records(
        loaded.rows(),
        validation_ratio=args.validation_ratio,
        test_ratio=args.test_ratio,
        stratify_by=stratify_by,
        group_by=args.group_by,
        kfold=args.kfold,
        seed=args.seed,
    )
    arguments = {name: getattr(args, name) for name in RECORDED}
    manifest = write_split(loaded, plan, args.out, overwrite=args.overwrite, arguments=arguments)
    if args.json:
        print_json(manifest)
    else:
        _print_summary(args.out, manifest)
    return 0


def _print_summary(out: str, manifest) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    how = manifest.strategy + (f", stratified by {manifest.stratify_by}" if manifest.stratify_by else "")
    how += f", grouped by {manifest.group_by}" if manifest.group_by else ""
    console.print(f"wrote {out} ({how}; seed {manifest.seed})", markup=False)
    table = Table("file", "records", "labels", box=None, padding=(0, 2), header_style="bold")
    files = list(manifest.splits.values()) + [part for fold in manifest.folds for part in (fold.train, fold.validation)]
    for part in files:
        table.add_row(part.file, f"{part.records:,}", str(len(part.labels)) if part.labels else "-")
    console.print(table)
    if manifest.dropped_lines:
        console.print(f"left out {len(manifest.dropped_lines)} invalid records (lines in manifest.json)", markup=False)
    console.print("manifest.json: counts per split and label, sha256 of every file, the arguments", markup=False)
