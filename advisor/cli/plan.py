"""`advisor plan` (being built)."""

from ..errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("plan", help="(not yet available)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    raise UserError("'advisor plan' is not available yet")
