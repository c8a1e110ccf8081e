"""advisor: should I fine-tune, and how? A cited recommendation, a measured estimate, then the run.

The public names a method plugin needs: the `hookimpl` marker and the
`Method` contract. Light on purpose: every command imports this package, and
`advisor plan` must answer in well under half a second, so the pydantic
contract (`Method`, `Footprint`, `MethodHyperparameters`) and `__version__`
load on first use (PEP 562): the CLI sets up its process before pydantic starts.
"""

from typing import Any

import pluggy

#: Marks a plugin's hook implementations (see advisor/hookspecs.py).
hookimpl = pluggy.HookimplMarker("advisor")

_CONTRACT = ("Footprint", "Method", "MethodHyperparameters")

__all__ = [*_CONTRACT, "__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    if name in _CONTRACT:
        from . import methods

        return getattr(methods, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("advisor")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0"
    raise AttributeError(f"module 'advisor' has no attribute '{name}'")
