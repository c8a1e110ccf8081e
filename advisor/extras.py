"""Optional dependencies: a missing one is one line naming the `pip install` that brings it.

The core installs without the training stack; `advisor execute`, the demo and
the methods that need CUDA-only libraries ask here first, before importing
anything heavy (`find_spec` imports nothing).
"""

from __future__ import annotations

import importlib.util

from .errors import UserError

#: extra -> the modules it provides (pyproject.toml's optional-dependencies).
EXTRAS = {
    "train": ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "matplotlib"),
    "cuda": ("bitsandbytes",),
}


def missing(modules: tuple[str, ...]) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """UserError naming the install command when any module of `extra` (or `modules`) is absent."""
    absent = missing(modules if modules is not None else EXTRAS[extra])
    if absent:
        raise UserError(
            f"{what} needs {', '.join(absent)} (the '{extra}' extra): pip install 'advisor[{extra}]'"
        )
