"""`advisor validate` (being built)."""

from ..errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("validate", help="(not yet available)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    raise UserError("'advisor validate' is not available yet")
