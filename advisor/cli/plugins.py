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
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fine-tuning methods")
    table.add_column("method", no_wrap=True)
    for column in ("family", "merge", "CUDA", "from"):
        table.add_column(column, overflow="fold")
    table.add_column("description", ratio=3)
    for info in infos:
        origin = "built-in" if info.builtin else f"{info.package} {info.version}"
        table.add_row(info.name, info.family, _yes_no(info.mergeable), _yes_no(info.requires_cuda),
                      origin, info.description)
    Console().print(table)
    return 0


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"
