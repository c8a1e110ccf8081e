"""`advisor gpus`: the accelerator catalog."""

from __future__ import annotations

from .. import knowledge_base as knowledge
from ..documents import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("gpus", help="list the accelerators advisor knows")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def run(args) -> int:
    entries = list(knowledge.gpus().values())
    if args.json:
        print_json([entry.model_dump() for entry in entries])
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold underline")
    table.add_column("id", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("GiB", justify="right", no_wrap=True)
    table.add_column("bf16", no_wrap=True)
    table.add_column("fp8", no_wrap=True)
    table.add_column("4-bit", no_wrap=True)
    table.add_column("TFLOPS", justify="right", no_wrap=True)
    for entry in entries:
        table.add_row(entry.id, entry.name, f"{entry.memory_gib:.1f}", _yes_no(entry.bf16), _yes_no(entry.fp8),
                      _yes_no(entry.bitsandbytes), f"{entry.peak_tflops_bf16:.0f}")
    Console().print(table)
    return 0


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"
