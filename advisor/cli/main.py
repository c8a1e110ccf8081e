"""`advisor` entry point: parse, dispatch to one command module, turn mistakes into one line.

Each command lives in its own module with `register(subparsers)`; the module
imports nothing heavy at import time, so `advisor plan` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from pydantic import ValidationError

from ..errors import EXIT_USAGE, UserError, describe_validation_error

#: Command modules under advisor.cli, in the order `advisor --help` lists them.
COMMANDS = ("plan", "estimate", "validate", "split", "execute", "plugins", "models", "gpus", "schema", "wizard")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit 2 (not usage + traceback)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UserError(message)


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser with every command, or with `only` that one (a command's import is part of its latency)."""
    parser = OneLineParser(prog="advisor", description="Should I fine-tune, and how? Then do it.")
    subparsers = parser.add_subparsers(dest="command", parser_class=OneLineParser, metavar="COMMAND")
    for name in (only,) if only in COMMANDS else COMMANDS:
        importlib.import_module(f"advisor.cli.{name}").register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args_list = args_list or ["wizard"]
        parser = build_parser(only=args_list[0])
        args = parser.parse_args(args_list)
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return error.exit_code
    except ValidationError as error:
        print(f"error: {describe_validation_error(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
