"""The `advisor` command line. `run` is the console script (and `python -m advisor`).

`run` sets up the process before pydantic and the command modules load, for the
cold start issue 17 asks of `advisor plan` (benchmarks/plan_latency.py): Python's
cyclic garbage collector stays off while the commands that answer in well under
a second run, and pydantic's plugin scan, which finds nothing advisor uses, is
skipped (advisor/cli/main.py turns it off). Importing this package changes nothing.
"""

import gc
import sys


def run() -> None:
    # Class building at import allocates enough to trigger full collections that find nothing to free: off, the
    # default plan ran 3% fewer instructions (callgrind). main() turns it back on for every command not listed
    # in its SHORT_COMMANDS, so training and the wizard collect as usual.
    gc.disable()
    from .main import main

    sys.exit(main())
