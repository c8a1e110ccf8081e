"""pydantic's plugins, off in advisor's own processes, without the cost of looking for them.

pydantic looks for its plugins (the `pydantic` entry points of every installed
distribution) when it builds the first model class. advisor's command line uses
none, so it sets PYDANTIC_DISABLE_PLUGINS=__all__ (a value the user set is kept).
pydantic then finds none, but its loader module still imports importlib.metadata,
and with it email, zipfile and csv: 48 M of the ~1,050 M instructions of a cold
`advisor plan` (callgrind), where advisor's own entry points come from its cache
(advisor/entry_point_cache.py). So, where the variable says __all__ and the loader
is not loaded yet, a module answering "no plugins", as the loader would, stands
in for it; any other name asked of it comes from the real loader.
"""

import importlib
import os
import sys
import types
from typing import Any

LOADER = "pydantic.plugin._loader"


def turn_off() -> None:
    """PYDANTIC_DISABLE_PLUGINS=__all__ unless set; under it, the loader's stand-in (before any model is built)."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if os.environ["PYDANTIC_DISABLE_PLUGINS"] != "__all__" or LOADER in sys.modules:
        return
    stand_in = types.ModuleType(LOADER, "pydantic's plugin loader, plugins disabled (advisor.cli.pydantic_plugins)")
    stand_in.get_plugins = _no_plugins
    stand_in.__getattr__ = _from_real_loader
    sys.modules[LOADER] = stand_in


def _no_plugins() -> tuple[()]:
    return ()


def _from_real_loader(name: str) -> Any:
    """A name the stand-in lacks: the real loader replaces it and answers (a newer pydantic may ask for more)."""
    if name.startswith("__"):
        raise AttributeError(name)
    del sys.modules[LOADER]
    return getattr(importlib.import_module(LOADER), name)
