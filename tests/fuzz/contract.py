"""The contract every fuzz case asserts (CONTRACT.md "Exit codes and errors"), and ways to run the CLI.

- the exit code is one of those the case allows (0 yes, 1 no, 2 bad input);
- exit 2 prints exactly one stderr line, `error: ...` (warning lines may come before it);
- no Python traceback, ever;
- with --json, stdout is empty or exactly one JSON document;
- every file the person gave is byte-for-byte unchanged (sha256).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from hypothesis import strategies as st

from advisor.cli.main import main


@dataclass
class Outcome:
    argv: list[str]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"advisor {' '.join(self.argv)[:300]!r} -> {self.code}\nstdout: {self.out[-800:]}\nstderr: {self.err[-1500:]}"


def run_cli(argv: Sequence[str]) -> Outcome:
    """`advisor ARGV` in this process: main() exactly as the console script calls it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as stop:  # --help and argparse's own exits
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    return Outcome(list(argv), code, out.getvalue(), err.getvalue())


def run_process(argv: Sequence[str], env: Optional[dict[str, str]] = None, cwd: Optional[Path] = None,
                timeout: float = 120) -> Outcome:
    """`python -m advisor ARGV` in a fresh process, stdin from /dev/null (no terminal)."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "advisor", *argv], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env=environment, cwd=cwd, timeout=timeout)
    return Outcome(list(argv), done.returncode, done.stdout, done.stderr)


def assert_contract(outcome: Outcome, codes: Iterable[int] = (0, 1, 2)) -> None:
    assert "Traceback" not in outcome.err + outcome.out, str(outcome)
    assert outcome.code in set(codes), str(outcome)
    if outcome.code == 2:
        lines = [line for line in outcome.err.splitlines() if not line.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0][len("error: "):].strip(), str(outcome)
    if "--json" in outcome.argv and outcome.out.strip():
        try:
            json.loads(outcome.out)
        except ValueError:
            raise AssertionError(f"--json stdout is not one JSON document\n{outcome}") from None


def fingerprint(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file() and not path.is_symlink()}


def assert_unchanged(before: dict[str, str], root: Path) -> None:
    after = fingerprint(root)
    changed = [name for name, digest in before.items() if after.get(name) != digest]
    assert not changed, f"user files changed or removed: {changed}"


# -- hostile values ----------------------------------------------------------------
#: What people (and scripts) type where a number goes.
NUMBER_WORDS = ["inf", "-inf", "Infinity", "nan", "NaN", "1e20", "1e400", "-1", "0", "-0", "0.0", "1.5", "1e-400",
                "99999999999999999999999999", "4294967296", "-4294967297", "0x10", "1_000", "٣", "", " ", "true",
                "null", "None", "+7", "8", "1000", "3.0"]
#: Characters a command line can carry: anything but NUL and lone surrogates.
ARG_CHARACTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")

numbers = st.one_of(st.sampled_from(NUMBER_WORDS), st.integers().map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr))
words = st.one_of(st.text(ARG_CHARACTERS, max_size=30),
                  st.sampled_from(["-", "--json", "../../etc/passwd", "~nosuchuser/x", "~", "💥" * 50, "a" * 5000,
                                   "lora", "llama-3.2-1b", "a10g", "cpu", "CON", " lora ", "\t", "\n"]))
#: Any JSON value, nested a little; floats include the infinities json.dumps writes as Infinity/NaN.
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(ARG_CHARACTERS, max_size=20),
              st.sampled_from([10**30, -(10**30), 2**32, 2**64])),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def nested(depth: int, leaf: str = "1") -> str:
    """A JSON array nested `depth` levels deep."""
    return "[" * depth + leaf + "]" * depth
