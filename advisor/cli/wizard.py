"""`advisor wizard` (and `advisor` with no arguments): the Textual wizard.

textual is imported inside the handler, so the other commands never load it.
`--profile FILE` starts the wizard with that profile's answers. Without an
interactive terminal (stdin or stdout redirected, TERM=dumb) the wizard is
refused with one line: Textual would otherwise wait forever for keys that
never come.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from ..errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("wizard", help="answer a few questions in a terminal UI, get a plan, run it")
    parser.add_argument("--profile", help="start from this profile (JSON, TOML or YAML, the keys of `advisor plan`)")
    parser.set_defaults(handler=run)


def no_terminal_reason() -> Optional[str]:
    """Why this process cannot run a full-screen UI, or None when it can."""
    for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)):
        try:
            interactive = stream is not None and stream.isatty()
        except (AttributeError, ValueError):  # a replaced or closed stream
            interactive = False
        if not interactive:
            return f"{name} is not a terminal"
    if os.environ.get("TERM", "") in ("", "dumb"):
        return f"TERM is {os.environ.get('TERM') or 'unset'}"
    return None


def run(args: argparse.Namespace) -> int:
    from ..models import Profile, validate_profile
    from ..documents import read_structured_file

    profile = validate_profile(read_structured_file(args.profile)) if args.profile else Profile()
    reason = no_terminal_reason()
    if reason is not None:
        raise UserError(
            f"the wizard needs an interactive terminal ({reason}); use `advisor plan` "
            "(see `advisor --help`) for a plan without one"
        )
    from ..tui.app import build_app

    build_app(profile).run()
    return 0
