"""The plan's batches: records evaluated as read, skipped lines checked for duplicates by the run.

A batch holds up to ``BATCH`` records evaluated and up to ``LINES`` lines; a run of skipped lines
has its SKU ids recorded in one statement, one by one only when a duplicate is among them. Given
a catalog applied once, expect the same changes whatever the batch sizes, and a duplicate
reported in its place whether its first occurrence was skipped or parsed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.state._store import StateStore
from engine.sync import _plan
from engine.sync._source import FirstSeen
from tests.test_incremental_plan import _line_of, applied_first, catalog, edit_line, plan, state

__all__ = ["catalog", "state"]  # the fixtures, imported


def _ops(changes: list[_plan.Change]) -> list[tuple[str, str]]:
    return [(c.op, c.sku_id) for c in changes]


@pytest.mark.parametrize(("batch", "lines"), [(1, 1), (3, 7), (100, 1000)])
def test_the_changes_do_not_depend_on_the_batch_sizes(
    catalog: Path, state: StateStore, monkeypatch: pytest.MonkeyPatch, batch: int, lines: int
) -> None:
    applied_first(catalog, state)
    edit_line(catalog, 5, '"name": "', '"name": "Novo ')
    expected, _ = plan(catalog, state)
    monkeypatch.setattr(_plan, "BATCH", batch)
    monkeypatch.setattr(_plan, "LINES", lines)
    changes, planner = plan(catalog, state)
    assert _ops(changes) == _ops(expected)
    assert planner.summary.records == len(catalog.read_text(encoding="utf-8").splitlines())


def test_a_skipped_line_repeating_a_parsed_one_is_a_duplicate_in_its_place(
    catalog: Path, state: StateStore
) -> None:
    created = applied_first(catalog, state)
    lines = catalog.read_text(encoding="utf-8").splitlines()
    number = _line_of(catalog, created[0].sku_id)
    applied_line = lines[number - 1]
    edit_line(catalog, number, '"name": "', '"name": "Novo ')  # parsed: its bytes changed
    lines = catalog.read_text(encoding="utf-8").splitlines()
    catalog.write_text("\n".join([*lines[:-1], applied_line, lines[-1]]) + "\n", encoding="utf-8")
    changes, planner = plan(catalog, state)
    (duplicate,) = [c for c in changes if c.op == "invalid" and c.sku_id == created[0].sku_id]
    assert f"duplicate of line {number}" in duplicate.reasons[-1].message
    assert _ops(changes)[-2] == ("invalid", created[0].sku_id)  # before the last line's change
    assert planner.summary.skipped == len(created) - 1


def test_all_first_records_a_run_only_when_none_was_seen() -> None:
    seen = FirstSeen()
    assert seen.all_first([("a", 1), ("b", 2)])
    assert not seen.all_first([("c", 3), ("a", 4)])  # "a" again: nothing of the run is recorded
    assert seen.first("c", 5) is None
    assert not seen.all_first([("d", 6), ("d", 7)])  # twice within the run
    assert seen.first("d", 8) is None
    assert seen.first("a", 9) == (1, None)
    seen.close()
