"""Find the method plugins and answer "which methods exist, and who provides them?".

The planner, the estimator, the backends and `advisor plugins` ask here. Every
module listed under the entry-point group `advisor` is a plugin, the built-ins
in plugins/ included (pyproject.toml lists them), so the built-ins prove the
same path third-party packages take. Loading imports the plugin modules only:
torch and peft stay unimported until a method's `build` runs.

Plugins are isolated: a plugin that fails anywhere (its import, SystemExit
and KeyboardInterrupt raised by the import included, its hook, or a method
whose defaults or `footprint` fail or return something that is not a
Footprint) is named in one stderr line and only its methods are dropped; the
other plugins keep working. A method name already registered (a built-in
name, say) is refused for the later plugin only: built-ins load first, so
they win. Whatever a plugin prints goes to stderr, never into `--json`
output. Later calls into plugin code go through `plugin_call` and
`footprint_of`, which turn a failure into one line naming the plugin.
"""

import contextlib
import functools
import sys
from typing import Any, Iterable, Iterator, NamedTuple, Optional

import pluggy
from pydantic import BaseModel, Field

from . import hookspecs
from .entry_point_cache import Found, installed
from .architecture import Architecture
from .errors import UserError, did_you_mean
from .methods import Footprint, Method, MethodFamily, MethodHyperparameters

#: The entry-point group (and pluggy project name) method plugins register under.
GROUP = "advisor"
#: The distribution whose plugins count as built-in.
BUILTIN_DISTRIBUTION = "advisor"
#: What a plugin's code may raise that must not end advisor: import-time sys.exit() and
#: KeyboardInterrupt included (a plugin raising it is not the user pressing Ctrl-C).
_PLUGIN_FAILURES = (Exception, SystemExit, KeyboardInterrupt)
#: A small decoder every third-party method is tried on when it registers: a method whose
#: defaults or footprint fail here would fail every plan, so it is dropped up front.
_TRIAL_ARCHITECTURE = Architecture(family="llama", num_layers=2, hidden_size=64, intermediate_size=128,
                                   num_heads=4, num_kv_heads=2, vocab_size=256, tied_embeddings=False)


class PluginError(UserError):
    """A plugin's code failed or returned something unusable: one line naming the plugin, exit 2."""


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


class _Provider(NamedTuple):
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
    def load_entry_points(self, found: Iterable[Found]) -> None:
        """Import and register each entry point; built-ins first, failures reported and skipped."""
        for point, package, version in sorted(found, key=lambda item: (item.package != BUILTIN_DISTRIBUTION,
                                                                        item.package, item.point.name)):
            provider = _Provider(plugin=point.name, package=package, version=version)
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    module = point.load()
            except _PLUGIN_FAILURES as error:  # any import-time failure of third-party code
                _warn(provider, error)
                continue
            self.add_plugin(module, provider)

    def add_plugin(self, plugin: Any, provider: _Provider) -> None:
        """Register one plugin object (a module, usually) and collect the methods it registers."""
        if self._pm.is_registered(plugin):
            return
        collected: list[Method] = []
        try:
            with contextlib.redirect_stdout(sys.stderr):
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
        except _PLUGIN_FAILURES as error:  # a broken plugin must not take the others down
            self.remove_plugin(plugin)
            _warn(provider, error)
            return
        for method in collected:
            if method.name in self._methods:
                other = self._methods[method.name][1]
                _warn(provider, f"registers method '{method.name}', already registered by package '{other.package}' "
                                f"(plugin '{other.plugin}'); this plugin's '{method.name}' is refused")
                continue
            if provider.package != BUILTIN_DISTRIBUTION:
                problem = _trial_problem(method)
                if problem:
                    _warn(provider, f"method '{method.name}' is dropped: {problem}")
                    continue
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

    def provider_of(self, method: Method) -> Optional[_Provider]:
        entry = self._methods.get(method.name)
        return entry[1] if entry is not None and entry[0] is method else None

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


def _describe(error: BaseException) -> str:
    """`Type: first line of the message`, whatever the exception holds."""
    try:
        text = str(error).strip()
    except Exception:  # a plugin's exception whose __str__ itself fails
        text = ""
    detail = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}{': ' + detail if detail else ''}"


def _warn(provider: _Provider, problem: BaseException | str) -> None:
    """One stderr line naming the plugin: `failed to load: <error>`, or what was refused."""
    what = problem if isinstance(problem, str) else f"failed to load: {_describe(problem)}"
    print(f"warning: plugin '{provider.plugin}' (package {provider.package}) {what}", file=sys.stderr)


def _trial_problem(method: Method) -> str:
    """Why `method` cannot be planned with (its defaults or footprint fail on a small decoder), or ''."""
    if not (isinstance(method.Hyperparameters, type) and issubclass(method.Hyperparameters, MethodHyperparameters)):
        return "its Hyperparameters is not an advisor MethodHyperparameters model"
    try:
        with contextlib.redirect_stdout(sys.stderr):
            hp = method.hyperparameters({})
            footprint = method.footprint(_TRIAL_ARCHITECTURE, hp)
    except UserError:
        return ""  # the method refuses this architecture on purpose, with a message: fine
    except _PLUGIN_FAILURES as error:
        return f"footprint() on a small llama failed: {_describe(error)}"
    if not isinstance(footprint, Footprint):
        return f"footprint() returned {type(footprint).__name__}, not an advisor Footprint"
    return ""


@functools.cache
def load_plugins() -> MethodRegistry:
    """The registry of every installed plugin, loaded once per process."""
    registry = MethodRegistry()
    try:
        discovered = installed(GROUP)
    except Exception as error:  # a corrupt dist-info of some other package: no plugins is still a working advisor
        print(f"warning: cannot list the installed plugins: {_describe(error)}", file=sys.stderr)
        discovered = []
    registry.load_entry_points(discovered)
    return registry


def _plugin_named(method: Method) -> str:
    provider = load_plugins().provider_of(method)
    if provider is None:
        return f"method '{method.name}'"
    return f"method '{method.name}' (plugin '{provider.plugin}', package {provider.package})"


@contextlib.contextmanager
def plugin_call(method: Method, what: str) -> Iterator[None]:
    """Run a method's own code: what it prints goes to stderr, and a failure is a PluginError naming it.

    A UserError the method raises on purpose passes through unchanged.
    """
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except UserError:
        raise
    except (Exception, SystemExit) as error:
        raise PluginError(f"{_plugin_named(method)} failed in {what}: {_describe(error)}") from error


def footprint_of(method: Method, arch: Architecture, hp: MethodHyperparameters) -> Footprint:
    """`method.footprint(arch, hp)`, isolated by `plugin_call` and checked to be a Footprint."""
    with plugin_call(method, "footprint()"):
        footprint = method.footprint(arch, hp)
    if not isinstance(footprint, Footprint):
        raise PluginError(f"{_plugin_named(method)} returned {type(footprint).__name__} from footprint(), "
                          "not an advisor Footprint")
    return footprint


def get_method(name: str) -> Method:
    """The method called `name`; UserError naming the known ones (and a close match) otherwise."""
    return load_plugins().get(name)


def all_methods() -> dict[str, Method]:
    """Every registered method by name: built-ins first, then third-party plugins."""
    return load_plugins().methods()


def usable_methods(arch: Architecture, forced: Optional[str] = None) -> dict[str, Method]:
    """all_methods() less the third-party ones whose footprint fails or refuses `arch`, each named on
    stderr. The `forced` method (--method) is not left out: its failure is the command's one error line."""
    registry = load_plugins()
    usable = {}
    for name, method in registry.methods().items():
        provider = registry.provider_of(method)
        if name != forced and provider is not None and provider.package != BUILTIN_DISTRIBUTION:
            try:
                footprint_of(method, arch, method.hyperparameters({}))
            except UserError as error:  # PluginError included
                print(f"warning: {error.message}; method '{name}' is left out of this plan", file=sys.stderr)
                continue
        usable[name] = method
    return usable


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
