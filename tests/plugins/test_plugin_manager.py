"""The plugin manager: entry-point loading, isolation of broken plugins, duplicates, lookups, the CLI.

Third-party plugins are simulated the way pip installs them: a module plus a
`*.dist-info` with an `entry_points.txt` on the path, so loading goes through
importlib.metadata exactly as for the built-ins and the rsLoRA example.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from advisor import Method, hookimpl, manager
from advisor.errors import UserError
from advisor.methods import Footprint
from advisor.entry_point_cache import Found
from advisor.manager import MethodRegistry

ADVISOR = [sys.executable, "-m", "advisor"]


def _install_fake_distribution(site: Path, dist: str, module: str, source: str) -> None:
    """What `pip install` leaves behind: the module and its dist-info with one `advisor` entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[advisor]\n{module} = {module}\n")


def _advisor(args: list[str], site: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return subprocess.run(ADVISOR + args, capture_output=True, text=True, env=env)


class _TestMethod(Method):
    def footprint(self, arch, hp):
        return Footprint(trainable_params=1)


def _test_method(name: str) -> Method:
    return _TestMethod(name=name, description="a test method", family="additive", mergeable=False,
                       learning_rate=(1e-4, 1e-3))


def _plugin(*methods: Method) -> types.SimpleNamespace:
    @hookimpl
    def advisor_register_methods(register):
        for method in methods:
            register(method)

    return types.SimpleNamespace(advisor_register_methods=advisor_register_methods)


# -- through the CLI, as a user sees it ---------------------------------------
def test_plugins_json_lists_builtins_and_the_example_package():
    result = _advisor(["plugins", "--json"])
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for name in ("full", "freeze", "lora", "qlora", "dora", "ia3", "prefix", "prompt_tuning", "adapter"):
        assert rows[name]["builtin"] is True and rows[name]["package"] == "advisor"
    assert rows["rslora"] == {
        "name": "rslora", "package": "advisor-method-rslora", "version": "0.1.0", "builtin": False,
        "description": rows["rslora"]["description"], "family": "reparameterisation", "mergeable": True,
        "requires_cuda": False,
    }, "install the example: pip install -e examples/advisor-method-rslora"
    assert rows["qlora"]["requires_cuda"] is True and rows["prefix"]["mergeable"] is False


def test_plugins_table_names_every_method():
    result = _advisor(["plugins"])
    assert result.returncode == 0, result.stderr
    for name in ("lora", "prompt_tuning", "rslora"):
        assert name in result.stdout


def test_a_plugin_raising_on_import_is_reported_and_skipped(tmp_path):
    _install_fake_distribution(tmp_path, "advisor-broken", "advisor_broken", "raise RuntimeError('boom at import')\n")
    result = _advisor(["plugins", "--json"], site=tmp_path)
    assert result.returncode == 0
    assert result.stderr.strip().splitlines() == [
        "warning: plugin 'advisor_broken' (package advisor-broken) failed to load: RuntimeError: boom at import"
    ]
    names = [row["name"] for row in json.loads(result.stdout)]
    assert "lora" in names and "rslora" in names


def test_a_package_reusing_a_builtin_name_is_refused_and_the_builtin_wins(tmp_path):
    _install_fake_distribution(tmp_path, "advisor-lora-clone", "advisor_lora_clone", """
        from advisor import hookimpl
        from advisor.plugins.lora import LoRA

        @hookimpl
        def advisor_register_methods(register):
            register(LoRA(name="lora", description="an impostor", family="additive", mergeable=False,
                          learning_rate=(1e-4, 1e-3)))
    """)
    result = _advisor(["plugins", "--json"], site=tmp_path)
    assert result.returncode == 0
    assert result.stderr.strip() == (
        "warning: plugin 'advisor_lora_clone' (package advisor-lora-clone) registers method 'lora', already "
        "registered by package 'advisor' (plugin 'lora'); this plugin's 'lora' is refused"
    )
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["lora"]["package"] == "advisor" and rows["lora"]["family"] == "reparameterisation"
    assert "rslora" in rows


# -- the registry itself ---------------------------------------------------------
def test_broken_entry_point_in_process(tmp_path, monkeypatch, capsys):
    (tmp_path / "raises_on_import.py").write_text("import no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = MethodRegistry()
    registry.load_entry_points([
        Found(EntryPoint(name="broken", value="raises_on_import", group="advisor"), "unknown", "unknown"),
        Found(EntryPoint(name="lora", value="advisor.plugins.lora", group="advisor"), "advisor", "0"),
    ])
    assert list(registry.methods()) == ["lora"]
    assert "warning: plugin 'broken' (package unknown) failed to load: ModuleNotFoundError" in capsys.readouterr().err


def test_a_plugin_registering_something_else_is_skipped(capsys):
    registry = MethodRegistry()
    registry.add_plugin(_plugin("not a method"), manager._Provider("odd", "odd-pkg", "1"))
    assert registry.methods() == {}
    assert "warning: plugin 'odd' (package odd-pkg) failed to load: TypeError: registered str" in capsys.readouterr().err


def test_a_misspelt_hook_is_reported(capsys):
    @hookimpl
    def advisor_register_method(register):  # missing the final "s"
        register(_test_method("never-seen"))

    registry = MethodRegistry()
    registry.add_plugin(types.SimpleNamespace(advisor_register_method=advisor_register_method),
                        manager._Provider("typo", "typo-pkg", "1"))
    assert registry.methods() == {}
    assert "plugin 'typo' (package typo-pkg) failed to load: PluginValidationError" in capsys.readouterr().err


def test_registered_plugin_adds_and_removes_a_method():
    plugin = _plugin(_test_method("test-method"))
    with manager.registered_plugin(plugin, name="test_plugin", package="test-package"):
        assert manager.get_method("test-method").description == "a test method"
        info = next(info for info in manager.plugin_infos() if info.name == "test-method")
        assert (info.package, info.builtin) == ("test-package", False)
    assert "test-method" not in manager.all_methods()


def test_a_duplicate_in_the_process_registry_is_refused_for_that_plugin_only(capsys):
    plugin = _plugin(_test_method("lora"), _test_method("dup-extra"))
    with manager.registered_plugin(plugin, name="dup", package="dup-package"):
        assert manager.get_method("lora").family == "reparameterisation"
        assert manager.get_method("dup-extra").description == "a test method"
    assert "plugin 'dup' (package dup-package) registers method 'lora', already registered by package 'advisor'" \
        in capsys.readouterr().err
    assert manager.get_method("lora").family == "reparameterisation"
    assert "dup-extra" not in manager.all_methods()


def test_unknown_method_names_the_known_ones_and_a_close_match():
    with pytest.raises(UserError) as error:
        manager.get_method("lorra")
    assert error.value.message.startswith("unknown method 'lorra'; known: adapter, dora, dpo, freeze, full")
    assert error.value.message.endswith("did you mean 'lora'?")


def test_every_method_answers_footprint_for_a_catalog_model():
    """What `advisor estimate --method NAME` and `plan --method NAME` need, for built-ins and plugins alike."""
    from advisor.knowledge_base import resolve_model

    arch = resolve_model("qwen2.5-0.5b").architecture
    for name, method in manager.all_methods().items():
        footprint = method.footprint(arch, method.hyperparameters({}))
        assert 0 < footprint.trainable_params <= arch.total_params(), name


def test_a_method_reads_and_copies_as_when_it_was_a_pydantic_model():
    """Plugins written against the pydantic Method keep working: dict(method), model_dump, model_copy."""
    from advisor.plugins import lora

    fields = dict(lora.METHOD)
    assert fields == lora.METHOD.model_dump() and fields["name"] == "lora" and fields["family"] == lora.METHOD.family
    copy = lora.METHOD.model_copy(update={"name": "my-lora"})
    assert type(copy) is type(lora.METHOD) and copy.name == "my-lora" and lora.METHOD.name == "lora"
    with pytest.raises(ValueError):
        lora.METHOD.model_copy(update={"name": "Not A Name"})  # validated, where pydantic's model_copy was not
    with pytest.raises(AttributeError):
        lora.METHOD.name = "other"  # frozen
