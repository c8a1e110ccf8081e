"""`advisor plan`: describe the goal, data and hardware; get a cited recommendation.

Inputs come from flags or `--profile FILE` (flags win). `--data FILE` runs the
validator and fills in what the person did not say (examples, task, quality).
Exit 1 when nothing fits the hardware (under --json with one line on stderr that says why).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, get_args

from ..errors import EXIT_NO
from ..models import Goal, Profile, Task, validate_profile
from ..documents import print_json, read_structured_file

#: flag -> (Profile field, argparse options). Defaults are SUPPRESS so only given flags count.
FLAGS: dict[str, dict[str, Any]] = {
    "--goal": dict(choices=list(get_args(Goal)), action="append",
                   help="knowledge injection vs behaviour alignment; repeat for both"),
    "--task": dict(choices=list(get_args(Task)), help="task family"),
    "--examples": dict(type=int, help="labelled examples available"),
    "--quality": dict(choices=["low", "medium", "high"], help="data quality"),
    "--dynamic-knowledge": dict(action="store_true", help="the facts change often"),
    "--one-off": dict(action="store_true", help="a one-off or rarely repeated task"),
    "--model": dict(help="catalog id or its hub id (see `advisor models`), a local directory with a config.json, or a cached hub id"),
    "--gpu": dict(help="accelerator id or name, any case: h100, 'A100 80GB', rtx-4090 (see `advisor gpus`)"),
    "--gpu-memory-gib": dict(type=float, help="overrides the catalog's memory per device"),
    "--num-gpus": dict(type=int, help="devices on the machine"),
    "--num-nodes": dict(type=int, help="machines, each with --num-gpus devices (default 1)"),
    "--latency": dict(choices=["strict", "moderate", "relaxed"], help="strict = no added inference latency"),
    "--tasks": dict(type=int, help="tasks/variants served from one base model"),
    "--seq-len": dict(type=int, help="training sequence length"),
    "--batch-size": dict(type=int, help="micro-batch size per device"),
    "--method": dict(help="force a method plugin (see `advisor plugins`)"),
    "--data": dict(help="a data file: its validation fills examples, task and quality"),
    "--price-per-hour": dict(type=float, help="price of one device-hour, for a cost estimate"),
    "--keep-general-ability": dict(action="store_true", help="the tuned model must keep its general ability"),
    "--continual-updates": dict(action="store_true", help="the model is updated again and again (e.g. monthly)"),
    "--corpus-tokens": dict(type=int, help="unlabelled domain corpus in tokens: from 50M, continued pre-training first"),
    "--language": dict(help="main language of the data, an ISO 639 code (default en)"),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("plan", help="recommend prompting, RAG, PEFT or full fine-tuning, with reasons")
    parser.add_argument("--profile", help="JSON, TOML or YAML file with the same keys (snake_case)")
    for flag, options in FLAGS.items():
        parser.add_argument(flag, default=argparse.SUPPRESS, **options)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--out", help="also write the plan JSON to this new file")
    parser.set_defaults(handler=run)


def profile_from_args(args: argparse.Namespace) -> Profile:
    """The profile file's keys, overridden by the flags given, validated."""
    values: dict[str, Any] = read_structured_file(args.profile) if args.profile else {}
    for flag in FLAGS:
        field = flag.lstrip("-").replace("-", "_")
        if hasattr(args, field):
            values[field] = getattr(args, field)
    goals = values.pop("goal", None) if isinstance(values.get("goal"), list) else None
    if goals:  # --goal given once or more: the first is `goal`, all of them `goals`
        values["goal"] = goals[0]
        values["goals"] = list(dict.fromkeys(goals)) if len(goals) > 1 else values.get("goals", [])
    return validate_profile(values)


def run(args: argparse.Namespace) -> int:
    from ..planner import plan_for

    plan = plan_for(profile_from_args(args))
    if args.out:
        from pathlib import Path

        from ..documents import json_text, write_new_file

        write_new_file(Path(args.out), json_text(plan) + "\n")
    if args.json:
        print_json(plan)
    else:
        from .render import render_plan

        render_plan(plan)
    nothing_fits = plan.estimate is not None and plan.estimate.fits is False
    if nothing_fits and args.json:  # stdout holds only the JSON: say on stderr why the exit code is 1
        print(f"no plan fits: {plan.recommendation.summary.split('. ')[0]}.", file=sys.stderr)
    return EXIT_NO if nothing_fits else 0
