"""`advisor models`: the model catalog (ids, families, sizes)."""

from __future__ import annotations

from .. import knowledge_base as knowledge
from ..documents import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the base models advisor knows")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def run(args) -> int:
    rows = [
        {
            "id": entry.id,
            "hf_id": entry.hf_id,
            "family": entry.architecture.family,
            "params": entry.architecture.total_params(),
            "active_params": entry.architecture.active_params(),
            "layers": entry.architecture.num_layers,
            "hidden_size": entry.architecture.hidden_size,
            "vocab_size": entry.architecture.vocab_size,
            "embedded": entry.embedded_package is not None,
        }
        for entry in knowledge.models().values()
    ]
    if args.json:
        print_json(rows)
        return 0
    from rich.console import Console
    from rich.table import Table

    # The hub id is a name people type (`--model` accepts it): never cut; the table fits 80 columns whole
    # (family, layers and hidden size are in --json).
    table = Table(box=None, pad_edge=False, header_style="bold underline")
    table.add_column("id", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("hub id (or source)", no_wrap=True)
    for row in rows:
        source = "embedded (offline)" if row["embedded"] else row["hf_id"]
        params = f"{row['params'] / 1e9:.2f}B"
        if row["active_params"] != row["params"]:  # mixture of experts: what a token computes with
            params += f" ({row['active_params'] / 1e9:.1f}B active)"
        table.add_row(row["id"], params, source)
    Console().print(table)
    return 0
