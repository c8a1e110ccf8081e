"""advisor: should I fine-tune, and how? A cited recommendation, a measured estimate, then the run.

The public names a method plugin needs: the `hookimpl` marker and the
`Method` contract. Light on purpose (pydantic and pluggy only): every command
imports this package, and `advisor plan` must answer in well under half a second.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

from .methods import Footprint, Method, MethodHyperparameters

#: Marks a plugin's hook implementations (see advisor/hookspecs.py).
hookimpl = pluggy.HookimplMarker("advisor")

try:
    __version__ = version("advisor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["Footprint", "Method", "MethodHyperparameters", "__version__", "hookimpl"]
