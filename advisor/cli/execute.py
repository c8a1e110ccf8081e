"""`advisor execute` (being built)."""

from ..errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("execute", help="(not yet available)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    raise UserError("'advisor execute' is not available yet")
