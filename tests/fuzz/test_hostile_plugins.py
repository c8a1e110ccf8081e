"""Hostile third-party plugins: each misbehaviour is named in one stderr line and drops only its method.

Plugins are installed the way pip leaves them (a module and a `*.dist-info/entry_points.txt` declaring the
group `advisor`) in a folder on sys.path, so discovery goes through importlib.metadata as for real ones.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from advisor import manager
from advisor.errors import UserError
from advisor.manager import PluginError, plugin_call

from .contract import assert_contract, run_cli, run_process

#: A working method, written into each plugin: what the bad parts are swapped into.
METHOD = '''
from advisor import Footprint, Method, hookimpl


class Tiny(Method):
    def footprint(self, arch, hp):
        return Footprint(trainable_params=10, added_params=10)


def tiny(name):
    return Tiny(name=name, description="a throwaway test method", family="additive", mergeable=False,
                learning_rate=(1e-4, 1e-3))
'''
REGISTER = '''
@hookimpl
def advisor_register_methods(register):
    register(tiny("{name}"))
'''


@pytest.fixture
def install(tmp_path, monkeypatch):
    """install(source, name) puts a one-module distribution on sys.path; plugins reload for the test."""
    site = tmp_path / "site"
    site.mkdir()
    installed: list[str] = []

    def _install(source: str, name: str) -> str:
        module = f"advisor_hostile_{name}"
        (site / f"{module}.py").write_text(METHOD + textwrap.dedent(source).replace("{name}", name.replace("_", "-")))
        info = site / f"advisor_hostile_{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: advisor-hostile-{name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[advisor]\n{name} = {module}\n")
        installed.append(module)
        return module

    monkeypatch.syspath_prepend(str(site))
    manager.load_plugins.cache_clear()
    yield _install
    manager.load_plugins.cache_clear()
    for module in installed:
        sys.modules.pop(module, None)


def _warnings_about(outcome, name: str) -> list[str]:
    return [line for line in outcome.err.splitlines() if f"advisor_hostile_{name}" in line or f"'{name}'" in line]


def _everything_else_works(name: str) -> None:
    """plan, estimate and plugins run (exit 0, clean --json) with the broken plugin installed."""
    for argv in (["plan", "--json"], ["plan", "--json", "--model", "qwen2.5-0.5b"], ["plugins", "--json"],
                 ["estimate", "--model", "qwen2.5-0.5b", "--method", "lora", "--json"], ["plugins"]):
        outcome = run_cli(argv)
        assert_contract(outcome, codes=[0])
        if "--json" in argv:
            json.loads(outcome.out)
    listed = [row["name"] for row in json.loads(run_cli(["plugins", "--json"]).out)]
    assert "lora" in listed and "rslora" in listed


BROKEN_AT_IMPORT = {
    "raises": "raise RuntimeError('boom at import')",
    "exits": "import sys\nsys.exit(3)",
    "exits_none": "raise SystemExit",
    "interrupts": "raise KeyboardInterrupt",
    "bad_import": "import advisor_no_such_module_anywhere",
    "bad_name": "METHOD = tiny('Not A Valid Name!')",
    "bad_str": "class Odd(Exception):\n    def __str__(self):\n        raise ValueError('no')\nraise Odd()",
    "multiline": "raise RuntimeError('first line\\nsecond line\\nthird')",
}


@pytest.mark.parametrize("name", sorted(BROKEN_AT_IMPORT))
def test_a_plugin_failing_at_import_is_named_once_and_skipped(install, name):
    install(BROKEN_AT_IMPORT[name], name)
    outcome = run_cli(["plugins", "--json"])
    assert_contract(outcome, codes=[0])
    warnings = _warnings_about(outcome, name)
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: plugin '{name}' (package advisor-hostile-"), outcome.err
    _everything_else_works(name)


BROKEN_METHODS = {
    "footprint_raises": ("class Bad(Tiny):\n    def footprint(self, arch, hp):\n        raise ZeroDivisionError('nope')",
                         "failed"),
    "footprint_none": ("class Bad(Tiny):\n    def footprint(self, arch, hp):\n        return None", "NoneType"),
    "footprint_dict": ("class Bad(Tiny):\n    def footprint(self, arch, hp):\n        return {'trainable_params': 1}",
                       "dict"),
    "footprint_exits": ("class Bad(Tiny):\n    def footprint(self, arch, hp):\n        raise SystemExit(1)", "SystemExit"),
    "footprint_missing": ("class Bad(Method):\n    pass", "NotImplementedError"),
    "hyperparameters_garbage": ("class Bad(Tiny):\n    Hyperparameters = dict", "Hyperparameters"),
    "hyperparameters_raise": ("class Bad(Tiny):\n    def hyperparameters(self, values=None):\n        raise KeyError('x')",
                              "KeyError"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_METHODS))
def test_a_method_that_cannot_be_sized_is_dropped_and_named(install, name):
    source, detail = BROKEN_METHODS[name]
    install(source + '''

def _bad(name):
    return Bad(name=name, description="broken", family="additive", mergeable=False, learning_rate=(1e-4, 1e-3))


@hookimpl
def advisor_register_methods(register):
    register(_bad("{name}"))
    register(tiny("{name}-good"))
''', name)
    outcome = run_cli(["plugins", "--json"])
    assert_contract(outcome, codes=[0])
    listed = [row["name"] for row in json.loads(outcome.out)]
    dashed = name.replace("_", "-")
    assert dashed not in listed and f"{dashed}-good" in listed, "only the broken method is dropped"
    warnings = _warnings_about(outcome, name)
    assert len(warnings) == 1 and f"method '{dashed}' is dropped" in warnings[0] and detail in warnings[0], outcome.err
    _everything_else_works(name)
    plan = run_cli(["plan", "--json", "--method", f"{dashed}-good"])
    assert_contract(plan, codes=[0, 1])
    assert json.loads(plan.out)["training"]["method"] == f"{dashed}-good"


BROKEN_HOOKS = {
    "hook_raises": "@hookimpl\ndef advisor_register_methods(register):\n    raise RuntimeError('hook boom')",
    "hook_exits": "@hookimpl\ndef advisor_register_methods(register):\n    raise SystemExit(2)",
    "hook_garbage": "@hookimpl\ndef advisor_register_methods(register):\n    register({'name': 'x'})",
    "hook_none": "@hookimpl\ndef advisor_register_methods(register):\n    register(None)",
    "hook_bad_args": "@hookimpl\ndef advisor_register_methods(register, extra):\n    pass",
    "hook_typo": "@hookimpl\ndef advisor_register_method(register):\n    register(tiny('typo'))",
    "hook_interrupts": "@hookimpl\ndef advisor_register_methods(register):\n    raise KeyboardInterrupt",
}


@pytest.mark.parametrize("name", sorted(BROKEN_HOOKS))
def test_a_broken_hook_is_named_and_skipped(install, name):
    install(BROKEN_HOOKS[name], name)
    outcome = run_cli(["plugins", "--json"])
    assert_contract(outcome, codes=[0])
    assert len(_warnings_about(outcome, name)) == 1, outcome.err
    _everything_else_works(name)


def test_reusing_a_builtin_name_is_refused_for_that_plugin_only(install):
    install(REGISTER.replace('tiny("{name}")', 'tiny("lora")') + "\n" + REGISTER.replace("advisor_register_methods",
            "_unused"), "clone")
    outcome = run_cli(["plugins", "--json"])
    assert_contract(outcome, codes=[0])
    rows = {row["name"]: row for row in json.loads(outcome.out)}
    assert rows["lora"]["package"] == "advisor" and rows["lora"]["builtin"] is True
    assert "registers method 'lora', already registered by package 'advisor'" in outcome.err
    _everything_else_works("clone")


def test_two_third_party_packages_with_one_name_keep_the_first(install):
    install(REGISTER, "first")
    install(REGISTER.replace('tiny("{name}")', 'tiny("first")'), "second")
    outcome = run_cli(["plugins", "--json"])
    assert_contract(outcome, codes=[0])
    rows = {row["name"]: row for row in json.loads(outcome.out)}
    assert rows["first"]["package"] == "advisor-hostile-first"
    assert "plugin 'second' (package advisor-hostile-second) registers method 'first'" in outcome.err


def test_printing_plugins_never_reach_json_output(install):
    install('''
print("hello from import")
import sys
sys.stdout.write("more noise\\n")


class Loud(Tiny):
    def footprint(self, arch, hp):
        print("sizing!")
        return super().footprint(arch, hp)


@hookimpl
def advisor_register_methods(register):
    print("registering")
    register(Loud(name="loud", description="prints", family="additive", mergeable=False, learning_rate=(1e-4, 1e-3)))
''', "loud")
    for argv in (["plugins", "--json"], ["plan", "--json"], ["plan", "--json", "--method", "loud"],
                 ["estimate", "--model", "qwen2.5-0.5b", "--method", "loud", "--json"]):
        outcome = run_cli(argv)
        assert_contract(outcome, codes=[0, 1])
        json.loads(outcome.out)
        assert "sizing!" not in outcome.out and "hello from import" not in outcome.out
    real = run_process(["plan", "--json", "--method", "loud"], env=_pythonpath())
    assert_contract(real, codes=[0, 1])
    json.loads(real.out)
    assert "hello from import" in real.err and "more noise" in real.err and "sizing!" in real.err


def test_a_footprint_failing_on_one_architecture_leaves_only_that_method_out(install):
    install('''
class Picky(Tiny):
    def footprint(self, arch, hp):
        if arch.family == "qwen2":
            raise ArithmeticError("qwen2 not supported here")
        return super().footprint(arch, hp)


@hookimpl
def advisor_register_methods(register):
    register(Picky(name="picky", description="llama only", family="additive", mergeable=False,
                   learning_rate=(1e-4, 1e-3)))
''', "picky")
    outcome = run_cli(["plan", "--json", "--model", "qwen2.5-0.5b"])
    assert_contract(outcome, codes=[0])
    assert "method 'picky' (plugin 'picky', package advisor-hostile-picky) failed in footprint()" in outcome.err
    assert "picky" not in [row.get("method") for row in json.loads(outcome.out)["alternatives"]]
    forced = run_cli(["plan", "--json", "--model", "qwen2.5-0.5b", "--method", "picky"])
    assert_contract(forced, codes=[2])
    assert "plugin 'picky'" in forced.err and "ArithmeticError: qwen2 not supported here" in forced.err
    estimate = run_cli(["estimate", "--model", "qwen2.5-0.5b", "--method", "picky"])
    assert_contract(estimate, codes=[2])
    assert "plugin 'picky'" in estimate.err
    assert_contract(run_cli(["plan", "--json", "--model", "llama-3.2-1b", "--method", "picky"]), codes=[0, 1])


def _pythonpath() -> dict[str, str]:
    return {"PYTHONPATH": ":".join(p for p in sys.path if p)}


@pytest.mark.parametrize("name", ["exits", "interrupts", "loud_exit"])
def test_in_a_real_process_a_plugin_cannot_end_advisor(install, name):
    sources = {**BROKEN_AT_IMPORT, "loud_exit": "print('{\"not\": \"the plan\"}')\nimport os\nraise SystemExit(0)"}
    install(sources[name], name)
    outcome = run_process(["plan", "--json"], env=_pythonpath())
    assert_contract(outcome, codes=[0])
    assert json.loads(outcome.out)["schema_version"] == 1
    assert len(_warnings_about(outcome, name)) == 1, outcome.err


# -- calls into plugin code after loading (build, load_options) -------------------------
class _Exploding:
    name = "boom"

    def build(self, model, hp, task_type="CAUSAL_LM"):
        raise MemoryError("pretend") if model == "memory" else ValueError("cannot wrap")


def test_plugin_call_names_the_method_and_keeps_deliberate_user_errors():
    method = _Exploding()
    with pytest.raises(PluginError, match=r"method 'boom' failed in build\(\): ValueError: cannot wrap"):
        with plugin_call(method, "build()"):
            method.build("model", None)
    with pytest.raises(UserError, match="^on purpose$") as kept:
        with plugin_call(method, "build()"):
            raise UserError("on purpose")
    assert not isinstance(kept.value, PluginError)
    with pytest.raises(PluginError, match="SystemExit"):
        with plugin_call(method, "build()"):
            raise SystemExit(4)


def test_plugin_call_sends_plugin_output_to_stderr(capsys):
    with plugin_call(_Exploding(), "build()"):
        print("from the plugin")
    captured = capsys.readouterr()
    assert captured.out == "" and "from the plugin" in captured.err


@pytest.mark.slow  # imports torch and transformers
@pytest.mark.parametrize("misbehaviour, detail", [
    ("build_raises", "failed in build(): RuntimeError: cannot wrap"),
    ("build_none", "failed in build(): TypeError: build() returned NoneType, not a torch module"),
    ("build_exits", "failed in build(): SystemExit"),
    ("options_none", "failed in load_options(): TypeError"),
])
def test_build_and_load_options_failures_name_the_plugin(tmp_path, misbehaviour, detail):
    from transformers import LlamaConfig, LlamaForCausalLM

    from advisor.backends.loading import load_model
    from advisor.methods import Footprint, Method
    from advisor.precision import Dtypes

    class Hostile(Method):
        def footprint(self, arch, hp):
            return Footprint(trainable_params=1)

        def build(self, model, hp, task_type="CAUSAL_LM"):
            if misbehaviour == "build_raises":
                raise RuntimeError("cannot wrap")
            if misbehaviour == "build_exits":
                raise SystemExit(1)
            return None if misbehaviour == "build_none" else model

        def load_options(self, hp, dtypes):
            return None if misbehaviour == "options_none" else {}

    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(tmp_path)
    method = Hostile(name="hostile", description="x", family="additive", mergeable=False, learning_rate=(1e-4, 1e-3))
    with manager.registered_plugin(types_namespace(method), name="hostile_plugin", package="hostile-package"):
        with pytest.raises(PluginError) as error:
            load_model(str(tmp_path), "causal_lm", Dtypes(weights="float32"), method, method.hyperparameters())
    assert error.value.message.startswith("method 'hostile' (plugin 'hostile_plugin', package hostile-package) ")
    assert detail in error.value.message


def types_namespace(method):
    """A plugin object registering `method`."""
    import types

    from advisor import hookimpl

    @hookimpl
    def advisor_register_methods(register):
        register(method)

    return types.SimpleNamespace(advisor_register_methods=advisor_register_methods)
