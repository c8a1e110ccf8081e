"""`advisor plugins` (being built)."""

from ..errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("plugins", help="(not yet available)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    raise UserError("'advisor plugins' is not available yet")
