"""`advisor wizard` (being built)."""

from ..errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("wizard", help="(not yet available)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    raise UserError("'advisor wizard' is not available yet")
