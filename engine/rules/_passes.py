"""The rule-file passes, in the order they run: one tuple, each pass a function testable alone.

A rule file goes through :data:`PASSES` as a :class:`RuleUnit`, each pass adding what it makes
of it: :func:`read_file` (the located YAML tree: every scalar knows its file:line:col),
:func:`load_shape` (included tables, the file's shape against the pydantic model, its own
tables merged) and :func:`compile_sections` (every section compiled into a
:class:`CompiledRules`: :mod:`engine.rules._compiler`, whose expressions go through parse,
check and lower in :mod:`engine.rules._expressions`). A pass reports what is wrong to the sink
and goes as far as it can, so a file with five mistakes gets five diagnostics; it returns None
only when the next pass could make nothing of its result. `tradepost check`, ``compile_rules``
and every run go through :func:`run_passes`; the one check that needs every file at once
(stock shared beyond 100%) follows in :func:`engine.rules._check.check_all`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeAlias

from engine._diagnostics import DiagnosticSink
from engine.rules._compiled import CompiledRules
from engine.rules._compiler import compile_loaded
from engine.rules._rulefile import LoadedRules, loaded_from, read_rule_file
from engine.rules._yaml import Node


@dataclass(frozen=True)
class RuleUnit:
    """One rule file on its way through the passes: what each pass has made of it so far.

    ``marketplaces`` are the names its ``marketplace:`` may take (None: unchecked);
    ``listing_keys`` the listing keys each marketplace's connector reads (None: unchecked).
    """

    path: Path
    marketplaces: Collection[str] | None = None
    listing_keys: Mapping[str, Collection[str]] | None = None
    root: Node | None = None
    loaded: LoadedRules | None = None
    compiled: CompiledRules | None = None


Pass: TypeAlias = Callable[[RuleUnit, DiagnosticSink], RuleUnit | None]
"""A pass: the unit with one more thing made of it, or None when there is nothing to go on with."""


def read_file(unit: RuleUnit, sink: DiagnosticSink) -> RuleUnit | None:
    """The file's located tree; None when it cannot be read or is not a mapping of sections."""
    root = read_rule_file(unit.path, sink)
    return replace(unit, root=root) if root is not None else None


def load_shape(unit: RuleUnit, sink: DiagnosticSink) -> RuleUnit:
    """The tree with its includes' tables, its shape checked and its tables merged."""
    assert unit.root is not None, "load_shape runs after read_file"
    return replace(unit, loaded=loaded_from(unit.path, unit.root, sink))


def compile_sections(unit: RuleUnit, sink: DiagnosticSink) -> RuleUnit | None:
    """Every section compiled; None when any error was reported, now or by an earlier pass."""
    assert unit.loaded is not None, "compile_sections runs after load_shape"
    compiled = compile_loaded(unit.loaded, sink, unit.marketplaces, unit.listing_keys)
    return replace(unit, compiled=compiled) if compiled is not None else None


PASSES: tuple[Pass, ...] = (read_file, load_shape, compile_sections)


def run_passes(unit: RuleUnit, sink: DiagnosticSink) -> RuleUnit:
    """``unit`` through :data:`PASSES` in order, up to the first that stops: the last unit made."""
    for step in PASSES:
        following = step(unit, sink)
        if following is None:
            break
        unit = following
    return unit
