"""`advisor wizard` (and `advisor` with no arguments): the Textual wizard.

textual is imported inside the handler, so the other commands never load it.
`--profile FILE` starts the wizard with that profile's answers.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("wizard", help="answer a few questions in a terminal UI, get a plan, run it")
    parser.add_argument("--profile", help="start from this profile (JSON, TOML or YAML, the keys of `advisor plan`)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..models import Profile, validate_profile
    from ..tui.app import build_app
    from ..documents import read_structured_file

    profile = validate_profile(read_structured_file(args.profile)) if args.profile else Profile()
    build_app(profile).run()
    return 0
