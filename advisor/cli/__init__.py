"""The `advisor` command line. `run` is the console script (and `python -m advisor`).

`run` sets up the process for the cold start issue 17 asks of `advisor plan`
(benchmarks/plan_latency.py): the commands that answer in well under a second
run with Python's cyclic garbage collector off and end with a hard exit, and
pydantic's plugin scan, which finds nothing advisor uses, is skipped
(advisor/cli/main.py turns it off). Importing this package changes nothing.
"""

import gc
import os
import sys


def run() -> None:
    # Class building at import allocates enough to trigger full collections that find nothing to free: off, the
    # default plan ran 3% fewer instructions (callgrind). main() turns it back on for every command not listed
    # in its SHORT_COMMANDS, and for one given a data file, so those collect (and exit) as usual.
    gc.disable()
    from .main import main

    code = main()
    if not gc.isenabled():
        _hard_exit(code)
    sys.exit(code)


def _hard_exit(code: int) -> None:
    """End a short command without freeing its objects one by one at interpreter shutdown: a cold plan's median
    wall time fell from 0.310 s to 0.262 s (21 runs each, alternating). mypy ends the same way (its
    util.hard_exit). A short command leaves nothing to clean up: its files are written and closed, and it starts
    no thread and registers nothing to run at exit."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # stdout closed early (`| head`): what Python's own exit reports
        code = 120
    os._exit(code)
