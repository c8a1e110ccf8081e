"""`advisor` entry point: parse, dispatch to one command module, turn mistakes into one line.

Each command lives in its own module with `register(subparsers)`; the module
imports nothing heavy at import time, so `advisor plan` stays fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from typing import Optional, Sequence

from .pydantic_plugins import turn_off as _turn_off_pydantic_plugins

_turn_off_pydantic_plugins()  # before the first model class is built

from pydantic import ValidationError  # noqa: E402

from ..documents import TOO_DEEP
from ..errors import EXIT_USAGE, UserError, describe_validation_error

#: Command modules under advisor.cli, in the order `advisor --help` lists them.
COMMANDS = ("plan", "estimate", "validate", "split", "execute", "plugins", "models", "gpus", "schema", "wizard")
#: Commands that compute an answer in well under a second and read no data file of any size: under the console
#: script (advisor.cli.run) they run with the cyclic garbage collector off; any other command turns it back on.
SHORT_COMMANDS = ("plan", "estimate", "plugins", "models", "gpus", "schema")


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
        if args_list[0] not in SHORT_COMMANDS or any(arg.partition("=")[0] == "--data" for arg in args_list):
            gc.enable()  # a long run, or a data file of any size: collected as usual
        parser = build_parser(only=args_list[0])
        args = parser.parse_args(args_list)
        return int(args.handler(args) or 0)
    except UserError as error:
        return _one_line(error.message, error.exit_code)
    except ValidationError as error:
        return _one_line(describe_validation_error(error), EXIT_USAGE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    # The causes below are handled where input is read (documents.py, data/readers.py); these
    # catch what a path not yet covered lets through, so a person still gets one line, not a traceback.
    except RecursionError:
        return _one_line(f"an input is {TOO_DEEP}", EXIT_USAGE)
    except UnicodeDecodeError as error:
        return _one_line(f"an input is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8",
                         EXIT_USAGE)
    except UnicodeEncodeError:  # a name from the command line that is not UTF-8, on a strict stdout
        return _one_line("cannot print a file or column name that is not valid UTF-8; rename it", EXIT_USAGE)
    except OSError as error:
        where = f"'{error.filename}'" if error.filename is not None else "a file"
        return _one_line(f"cannot use {where}: {error.strerror or error}", EXIT_USAGE)


#: An error line longer than this is cut: listing 100,000 column names helps nobody.
LONGEST_ERROR = 2000


def _one_line(message: str, exit_code: int) -> int:
    """The contract: one `error:` line on stderr, whatever the message holds."""
    text = " ".join(message.split()) or "unknown error"
    if len(text) > LONGEST_ERROR:
        text = f"{text[:LONGEST_ERROR]}... ({len(text) - LONGEST_ERROR:,} more characters)"
    print(f"error: {text}", file=sys.stderr)
    return exit_code
