"""The hooks a method plugin can implement (pluggy, project name `advisor`).

The plugin manager (advisor/manager.py) loads every module registered under
the entry-point group `advisor`, built-ins included, and calls these hooks.
A plugin implements a hook by decorating a module-level function of the same
name with `advisor.hookimpl`.
"""

from __future__ import annotations

from typing import Callable

import pluggy

from .methods import Method

hookspec = pluggy.HookspecMarker("advisor")


@hookspec
def advisor_register_methods(register: Callable[[Method], None]) -> None:
    """Register the fine-tuning methods this plugin provides.

    When: once per process, the first time anything asks for a method (the
    planner, the estimator, `advisor plugins`), right after the plugin module
    is imported.

    Parameters: `register`, a callable taking one `advisor.Method` instance;
    call it once per method. The manager records which plugin (and which
    distribution) gave each method, and refuses a name another plugin already
    registered.

    Result: none (return values are ignored). Every implementation is called;
    there is no "first answer wins". Keep this cheap: import torch, transformers
    or peft only inside `Method.build` / `Method.load_options`.
    """
