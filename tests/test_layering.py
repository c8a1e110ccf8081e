"""The layering as a checked contract: every import statement, lazy ones included.

The core answers plan/estimate/validate/split/plugins without the training
stack; backends never reach back into the CLI or the wizard; the CLI reaches
the training stack only through the backends.

Why not import-linter: its graph (grimp) walks the root package's directory
only, and `advisor.backends` / `advisor.plugins` install from `backends/` and
`plugins/` through setuptools' package-dir mapping, so `lint-imports` stops at
"Module 'advisor.backends' does not exist" (tried with import-linter 2.17).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TRAINING_STACK = ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "liger_kernel")
#: package -> (its folder, the modules it never imports)
CONTRACTS = {
    "the core": (
        [path for path in (ROOT / "advisor").rglob("*.py")
         if path.relative_to(ROOT / "advisor").parts[0] not in ("cli", "tui", "demo.py", "__main__.py")],
        ("advisor.backends", "advisor.cli", "advisor.tui", "advisor.demo", "textual", *TRAINING_STACK),
    ),
    "the backends": (list((ROOT / "backends").rglob("*.py")), ("advisor.cli", "advisor.tui", "advisor.demo")),
    "the CLI": (list((ROOT / "advisor" / "cli").rglob("*.py")), TRAINING_STACK),
}
#: Module names of the folders, for resolving relative imports.
PACKAGES = {ROOT / "advisor": "advisor", ROOT / "backends": "advisor.backends", ROOT / "plugins": "advisor.plugins"}


def module_name(path: Path) -> str:
    for folder, package in PACKAGES.items():
        if path.is_relative_to(folder):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([package, *parts])
    raise AssertionError(path)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of everything `path` imports, at any depth of the file."""
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool) -> set[str]:
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            imported = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(imported)
            names.update(f"{imported}.{alias.name}" for alias in node.names)
    return names


def breaks(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == banned or name.startswith(banned + ".") for banned in forbidden)


@pytest.mark.parametrize("layer", list(CONTRACTS))
def test_layer_imports_nothing_forbidden(layer):
    files, forbidden = CONTRACTS[layer]
    assert files, f"no files found for {layer}"
    broken = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files for name in imported_modules(path) if breaks(name, forbidden)
    )
    assert broken == []


def test_the_checker_sees_relative_and_lazy_imports():
    """The contract can fail: lazy, relative imports of the backends and torch from the core are caught."""
    found = imports_in("def f():\n    from .backends import local\n    import torch\n", "advisor.planner", False)
    assert {"advisor.backends.local", "torch"} <= found
    assert [name for name in found if breaks(name, CONTRACTS["the core"][1])]
    assert "advisor.errors" in imports_in("from ..errors import UserError\n", "advisor.backends.local", False)
