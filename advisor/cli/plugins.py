"""`advisor plugins`: the method plugins installed, built-in and third-party (CONTRACT.md).

Listing imports the plugin modules only (no torch, no peft): see advisor/manager.py.
"""

from __future__ import annotations

from .. import manager
from ..documents import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("plugins", help="list the fine-tuning methods installed (built-in and plugins)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def run(args) -> int:
    infos = manager.plugin_infos()
    if args.json:
        print_json([info.model_dump() for info in infos])
        return 0
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Two columns, so the description gets the width: at 80 columns it wraps into two lines, not ten.
    table = Table(title="fine-tuning methods", box=box.SIMPLE_HEAD, show_lines=False, pad_edge=False)
    table.add_column("method", no_wrap=True, style="bold")
    table.add_column("family · merge · device · from")
    for info in infos:
        origin = "built-in" if info.builtin else f"{info.package} {info.version}"
        facts = (f"{info.family} · {'mergeable' if info.mergeable else 'not mergeable'} · "
                 f"{'CUDA only' if info.requires_cuda else 'any device'} · {origin}")
        table.add_row(info.name, Text.assemble((facts, "dim"), "\n", info.description, "\n"))
    Console().print(table)
    return 0
