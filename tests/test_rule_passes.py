"""Each pass of the rule language runs alone, and `tradepost check` runs them from one tuple.

STYLE.md 8: a compiler is a sequence of passes, each testable alone. Here every pass is given
what the one before it would have made, built by hand, and nothing else: the file passes of
:mod:`engine.rules._passes` and the expression passes of :mod:`engine.rules._expressions`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

import engine
from engine._diagnostics import DiagnosticSink
from engine.rules import _passes
from engine.rules._expressions import check, lower, parse
from engine.rules._passes import PASSES, RuleUnit, compile_sections, load_shape, read_file
from engine.rules._rulefile import load_rules
from engine.rules._scopes import CATALOG_NAMES
from engine.rules._typecheck import Scope, source_of
from engine.rules._types import BOOL, NUMBER, Type
from engine.rules._yaml import Node, parse_yaml
from tests.conftest import MINIMAL_RULES, context_for, sample_record

RulePath = Callable[..., Path]


def _traced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the passes, in the order they run from now on."""
    ran: list[str] = []

    def traced(step: _passes.Pass) -> _passes.Pass:
        def run(unit: RuleUnit, sink: DiagnosticSink) -> RuleUnit | None:
            ran.append(step.__name__)
            return step(unit, sink)

        return run

    monkeypatch.setattr(_passes, "PASSES", tuple(traced(step) for step in PASSES))
    return ran


def test_check_runs_the_file_passes_of_the_tuple_in_its_order(
    rule_file: RulePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the tuple, expect read, shape, compile; and check_rules runs exactly those, in order."""
    assert (read_file, load_shape, compile_sections) == PASSES
    ran = _traced(monkeypatch)
    result = engine.check_rules(rule_file(""))
    assert ran == ["read_file", "load_shape", "compile_sections"]
    assert result.ok and result.compiled is not None


def test_a_file_that_cannot_be_read_stops_after_the_first_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = _traced(monkeypatch)
    result = engine.check_rules(tmp_path / "missing.yaml")
    assert ran == ["read_file"]
    assert [d.code for d in result.errors] == ["TP130"]


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        (MINIMAL_RULES, []),
        ("- marketplace: google\n", ["TP102"]),  # a list, not a mapping of sections
    ],
)
def test_read_file_alone(tmp_path: Path, text: str, codes: list[str]) -> None:
    """Given a file, expect its located tree (or nothing, and why)."""
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    sink = DiagnosticSink()
    unit = read_file(RuleUnit(path), sink)
    assert [d.code for d in sink.errors] == codes
    if not codes:
        assert unit is not None and unit.root is not None
        assert unit.root.get("marketplace") is not None and unit.loaded is None


@pytest.mark.parametrize(
    ("replace", "by", "codes", "shaped"),
    [
        ("", "", [], True),
        ("currency: BRL", "currency: reais", ["TP121"], False),  # the shape is wrong: no RuleFile
    ],
)
def test_load_shape_alone(tmp_path: Path, replace: str, by: str, codes: list[str], shaped: bool) -> None:
    """Given a tree parsed by hand (no read_file), expect the shape checked and the tables merged."""
    sink = DiagnosticSink()
    root = parse_yaml(MINIMAL_RULES.replace(replace, by) if replace else MINIMAL_RULES, "rules.yaml", sink)
    assert root is not None
    unit = load_shape(RuleUnit(tmp_path / "rules.yaml", root=root), sink)
    assert [d.code for d in sink.errors] == codes
    assert unit.loaded is not None and unit.compiled is None
    assert (unit.loaded.rules is not None) is shaped
    assert unit.loaded.tables["colors"].entries == {"Azul": "Blue", "Preto": "Black"}


@pytest.mark.parametrize(
    ("marketplaces", "codes"),
    [
        (None, []),  # names unchecked: the rule language knows no connector
        ({"mercadolibre", "google"}, []),
        ({"google"}, ["TP115"]),
    ],
)
def test_compile_sections_alone(rule_file: RulePath, marketplaces: set[str] | None, codes: list[str]) -> None:
    """Given a loaded file, expect sections compiled, the marketplace checked against the names given."""
    sink = DiagnosticSink()
    loaded = load_rules(rule_file(""), sink)
    unit = compile_sections(RuleUnit(Path("rules.yaml"), marketplaces, loaded=loaded), sink)
    assert [d.code for d in sink.errors] == codes
    if codes:
        assert unit is None
        return
    assert unit is not None and unit.compiled is not None
    assert unit.compiled.price.value(context_for(sample_record())) == Decimal("99.40")


def _expression(text: str) -> tuple[Node, DiagnosticSink]:
    sink = DiagnosticSink()
    root = parse_yaml(f"x: {text}\n", "e.yaml", sink)
    node = root.get("x") if root is not None else None
    assert node is not None
    return node, sink


@pytest.mark.parametrize(
    ("text", "parses", "codes"),
    [("price.selling * 2", True, []), ("price.selling *", False, ["TP201"])],
)
def test_parse_alone(text: str, parses: bool, codes: list[str]) -> None:
    node, sink = _expression(text)
    tree = parse(source_of(node), sink)
    assert (tree is not None) is parses
    assert [d.code for d in sink.errors] == codes


@pytest.mark.parametrize(
    ("text", "expect", "type_", "codes"),
    [
        ("price.selling * 2", NUMBER, NUMBER, []),
        ("price.selling > 10", BOOL, BOOL, []),
        ("price.seling * 2", NUMBER, None, ["TP302"]),
        ("price.selling * 2", BOOL, None, ["TP312"]),
    ],
)
def test_check_alone(text: str, expect: Type, type_: Type | None, codes: list[str]) -> None:
    """Given a parsed tree, expect every node typed, or the mistake at its span."""
    node, sink = _expression(text)
    source = source_of(node)
    tree = parse(source, sink)
    assert tree is not None
    checker = check(tree, Scope("in a test", CATALOG_NAMES), source, sink, expect)
    assert [d.code for d in sink.errors] == codes
    if type_ is None:
        assert checker is None
    else:
        assert checker is not None and tree.type == type_


def test_lower_alone_folds_constants_into_one_function() -> None:
    node, sink = _expression("price.selling * (1 + 15% + 20%)")
    source = source_of(node)
    tree = parse(source, sink)
    assert tree is not None
    checker = check(tree, Scope("in a test", CATALOG_NAMES), source, sink)
    assert checker is not None
    lowered = lower(tree, checker, {})
    assert lowered is not None
    fn, source_code = lowered
    assert fn(context_for(sample_record())) == Decimal("134.1900")
    assert "_add" not in fn.__code__.co_names
    assert source_code.code.startswith("(ctx.price.selling * ")  # one multiplication: 1.35 folded
