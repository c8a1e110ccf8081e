"""Find the method plugins and answer "which methods exist, and who provides them?".

The planner, the estimator, the backends and `advisor plugins` ask here. Every
module listed under the entry-point group `advisor` is a plugin, the built-ins
in plugins/ included (pyproject.toml lists them), so the built-ins prove the
same path third-party packages take. Loading imports the plugin modules only:
torch and peft stay unimported until a method's `build` runs.

A plugin that fails to import (or whose hook raises) is reported once on
stderr and skipped; two plugins claiming one method name is a UserError that
names both distributions.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Iterable, Iterator, Optional

import pluggy
from pydantic import BaseModel, Field

from . import hookspecs
from .errors import UserError, did_you_mean
from .methods import Method, MethodFamily

#: The entry-point group (and pluggy project name) method plugins register under.
GROUP = "advisor"
#: The distribution whose plugins count as built-in.
BUILTIN_DISTRIBUTION = "advisor"


class PluginInfo(BaseModel):
    """One registered method and where it came from: a row of `advisor plugins --json`."""

    name: str = Field(description="the method name plans and flags use")
    package: str = Field(description="the distribution that provides it")
    version: str = Field(description="that distribution's version")
    builtin: bool = Field(description="shipped with advisor itself")
    description: str
    family: MethodFamily
    mergeable: bool
    requires_cuda: bool


@dataclass(frozen=True)
class _Provider:
    """Who registered a method: the plugin (entry-point) name and its distribution."""

    plugin: str
    package: str
    version: str

    @property
    def key(self) -> str:
        """The pluggy name: entry-point names need only be unique within one distribution."""
        return f"{self.package}:{self.plugin}"


class MethodRegistry:
    """The methods registered by a set of plugins, in registration order."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(GROUP)
        self._pm.add_hookspecs(hookspecs)
        self._methods: dict[str, tuple[Method, _Provider]] = {}

    # -- loading ---------------------------------------------------------
    def load_entry_points(self, points: Iterable[EntryPoint]) -> None:
        """Import and register each entry point; built-ins first, failures reported and skipped."""
        for point in sorted(points, key=lambda p: (_package_of(p) != BUILTIN_DISTRIBUTION, _package_of(p), p.name)):
            provider = _Provider(plugin=point.name, package=_package_of(point), version=_version_of(point))
            try:
                module = point.load()
            except Exception as error:  # any import-time failure of third-party code
                _warn(provider, error)
                continue
            self.add_plugin(module, provider)

    def add_plugin(self, plugin: Any, provider: _Provider) -> None:
        """Register one plugin object (a module, usually) and collect the methods it registers."""
        if self._pm.is_registered(plugin):
            return
        collected: list[Method] = []
        try:
            self._pm.register(plugin, name=provider.key)
            self._pm.check_pending()  # a misspelt hook name is an error, not a silent no-op
            # Each plugin's implementation is called on its own, so every method is
            # attributed to the distribution that registered it.
            for impl in self._pm.hook.advisor_register_methods.get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(**{arg: collected.append for arg in impl.argnames})
            for method in collected:
                if not isinstance(method, Method):
                    raise TypeError(f"registered {type(method).__name__}, not an advisor.Method")
        except Exception as error:  # a broken plugin must not take the others down
            self.remove_plugin(plugin)
            _warn(provider, error)
            return
        for method in collected:
            if method.name in self._methods:
                other = self._methods[method.name][1]
                self.remove_plugin(plugin)
                raise UserError(
                    f"method '{method.name}' is registered twice: by package '{other.package}' "
                    f"(plugin '{other.plugin}') and by package '{provider.package}' "
                    f"(plugin '{provider.plugin}'); uninstall one of them"
                )
            self._methods[method.name] = (method, provider)

    def remove_plugin(self, plugin: Any) -> None:
        """Unregister a plugin object and forget the methods it registered."""
        key = self._pm.get_name(plugin)
        if key is None:
            return
        self._pm.unregister(plugin)
        self._methods = {name: entry for name, entry in self._methods.items() if entry[1].key != key}

    # -- queries ---------------------------------------------------------
    def methods(self) -> dict[str, Method]:
        return {name: method for name, (method, _) in self._methods.items()}

    def get(self, name: str) -> Method:
        entry = self._methods.get(name)
        if entry is None:
            known = list(self._methods)
            raise UserError(f"unknown method '{name}'; known: {', '.join(known)}{did_you_mean(name, known)}")
        return entry[0]

    def infos(self) -> list[PluginInfo]:
        return [
            PluginInfo(
                name=name,
                package=provider.package,
                version=provider.version,
                builtin=provider.package == BUILTIN_DISTRIBUTION,
                description=method.description,
                family=method.family,
                mergeable=method.mergeable,
                requires_cuda=method.requires_cuda,
            )
            for name, (method, provider) in self._methods.items()
        ]


def _package_of(point: EntryPoint) -> str:
    return point.dist.name if point.dist is not None else "unknown"


def _version_of(point: EntryPoint) -> str:
    return point.dist.version if point.dist is not None else "unknown"


def _warn(provider: _Provider, error: BaseException) -> None:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    print(
        f"warning: plugin '{provider.plugin}' (package {provider.package}) failed to load: "
        f"{type(error).__name__}{': ' + detail if detail else ''}",
        file=sys.stderr,
    )


@functools.cache
def load_plugins() -> MethodRegistry:
    """The registry of every installed plugin, loaded once per process."""
    registry = MethodRegistry()
    registry.load_entry_points(entry_points(group=GROUP))
    return registry


def get_method(name: str) -> Method:
    """The method called `name`; UserError naming the known ones (and a close match) otherwise."""
    return load_plugins().get(name)


def all_methods() -> dict[str, Method]:
    """Every registered method by name: built-ins first, then third-party plugins."""
    return load_plugins().methods()


def plugin_infos() -> list[PluginInfo]:
    """One PluginInfo per registered method, in the order of all_methods()."""
    return load_plugins().infos()


@contextlib.contextmanager
def registered_plugin(
    plugin: Any, name: Optional[str] = None, package: str = "tests", version: str = "0"
) -> Iterator[MethodRegistry]:
    """Register a plugin object into the process registry for the `with` block (for tests)."""
    registry = load_plugins()
    registry.add_plugin(plugin, _Provider(plugin=name or getattr(plugin, "__name__", repr(plugin)), package=package, version=version))
    try:
        yield registry
    finally:
        registry.remove_plugin(plugin)
