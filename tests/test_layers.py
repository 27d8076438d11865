"""Imports go one way: ``cli`` -> ``marketplaces`` -> ``engine`` (DESIGN.md, "Layout").

Every import in the three packages is parsed, those inside functions included: the engine
never imports a marketplace or the CLI, and neither marketplaces nor the CLI reach into a
private ``engine._module``. The connector contract and the registry that finds plug-ins are
public parts of the engine, so a third-party connector needs nothing private either.

Inside the engine, subpackages import only downward, in the order of :data:`ENGINE_LAYERS`
(docs/architecture.md, "Inside the engine"); imports under ``if TYPE_CHECKING:`` count too, since
a type a lower layer needs from a higher one is a type in the wrong layer. ``engine`` and
``engine.catalog`` are facades: they re-export from any layer, and no engine module imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "marketplaces", "cli")


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every module an import names, ``from a import b`` as ``a.b``."""
    module = _module_of(path)
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            found.extend((node.lineno, f"{origin}.{alias.name}") for alias in node.names)
    return found


def _private_engine(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "engine" and any(p.startswith("_") for p in parts[1:])


def violations() -> list[str]:
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = path.relative_to(ROOT)
            for line, name in _imported(path):
                top = name.split(".")[0]
                if package == "engine" and top in ("marketplaces", "cli"):
                    found.append(f"{where}:{line}: engine imports {name}")
                elif package == "marketplaces" and top == "cli":
                    found.append(f"{where}:{line}: marketplaces import {name}")
                elif package in ("marketplaces", "cli") and _private_engine(name):
                    found.append(f"{where}:{line}: {package} imports private {name}")
    return found


def test_imports_go_one_way() -> None:
    assert violations() == []


ENGINE_LAYERS: tuple[tuple[str, ...], ...] = (
    ("engine._diagnostics", "engine.jsonio", "engine.failpoints", "engine.secrets"),
    ("engine.model",),
    ("engine.rules",),
    ("engine.connectors",),
    ("engine.state",),
    ("engine.sync",),
    ("engine.orders",),
    ("engine.project",),
)
"""The engine's layers, lowest first: a module imports from its own layer or one below."""

FACADES = ("engine", "engine.catalog")


def _layer(name: str) -> int | None:
    """The layer of a dotted name (a module, or a name imported from one); None for a facade."""
    for depth, layer in enumerate(ENGINE_LAYERS):
        if any(name == top or name.startswith(top + ".") for top in layer):
            return depth
    return None


def layer_violations() -> list[str]:
    found: list[str] = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        module = _module_of(path)
        if module in FACADES:
            continue
        own = _layer(module)
        where = path.relative_to(ROOT)
        if own is None:
            found.append(f"{where}: {module} is in no layer of ENGINE_LAYERS")
            continue
        for line, name in _imported(path):
            if name.split(".")[0] != "engine":
                continue
            other = _layer(name)
            if other is None:
                found.append(f"{where}:{line}: {module} imports the facade ({name})")
            elif other > own:
                found.append(f"{where}:{line}: {module} imports {name}, a layer above it")
    return found


def test_engine_subpackages_import_only_downward() -> None:
    assert layer_violations() == []


@pytest.mark.parametrize(
    ("package", "source", "expected"),
    [
        ("engine", "def f():\n    from marketplaces import x\n", 1),
        ("engine", "import cli.main\n", 1),
        ("marketplaces", "from engine.sync._executor import Executor\n", 1),
        ("marketplaces", "from engine import _failpoints\n", 1),
        ("marketplaces", "from engine.connectors import Connector\n", 0),
        ("cli", "from engine.project._assembly import open_state\n", 1),
        ("cli", "from marketplaces.sandbox import build_sandbox\n", 0),
        ("marketplaces", "from cli import main\n", 1),
    ],
)
def test_the_check_sees_a_violation(
    package: str, source: str, expected: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given one file in a package, expect that many violations (imports in functions too)."""
    for name in PACKAGES:
        (tmp_path / name).mkdir()
    (tmp_path / package / "probe.py").write_text(source, encoding="utf-8")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert len(violations()) == expected


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("rules/probe.py", "def f():\n    from engine.connectors._registry import x\n", 1),
        (
            "connectors/probe.py",
            "if TYPE_CHECKING:\n    from engine.project._config import SourceConfig\n",
            1,
        ),
        ("sync/probe.py", "from engine.catalog import Sku\n", 1),  # a facade, from inside
        ("orders/probe.py", "from engine import Diagnostic\n", 1),  # the engine facade
        ("model/probe.py", "from engine import failpoints\n", 0),  # a base module
        ("project/probe.py", "from engine.rules import check_rules\n", 0),
        ("sync/probe.py", "from engine.sync._plan import Planner\n", 0),  # its own layer
        ("catalog/__init__.py", "from engine.sync._source import FirstSeen\n", 0),  # a facade
        ("newthing/probe.py", "import json\n", 1),  # a subpackage placed in no layer
    ],
)
def test_the_layer_check_sees_a_violation(
    module: str, source: str, expected: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given one engine module, expect that many layer violations (TYPE_CHECKING imports too)."""
    path = tmp_path / "engine" / module
    path.parent.mkdir(parents=True)
    path.write_text(source, encoding="utf-8")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert len(layer_violations()) == expected
