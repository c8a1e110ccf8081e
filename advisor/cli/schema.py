"""`advisor schema`: the JSON Schema of the Profile (input) and the Plan (output)."""

from __future__ import annotations

from ..models import Plan, Profile
from ..documents import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("schema", help="print the JSON Schema of Profile and Plan")
    parser.add_argument("which", nargs="?", choices=("all", "profile", "plan"), default="all")
    parser.set_defaults(handler=run)


def run(args) -> int:
    schemas = {"profile": Profile.model_json_schema(), "plan": Plan.model_json_schema()}
    print_json(schemas if args.which == "all" else schemas[args.which])
    return 0
