"""The incremental full pass: records applied unchanged are not parsed again, and nothing is missed.

A plan hashes each JSON Lines record (keyed with the rules' fingerprint); a SKU whose applied row
carries that hash, and whose last outcome is settled, is "unchanged" without being parsed. Given
a first plan applied (as the executor records it: the row with its source hash), expect:

| the re-plan sees                         | it                                               |
|------------------------------------------|--------------------------------------------------|
| the same catalog                         | skips every applied SKU, and the invalid and not |
|                                          | selected records: reported again, unread          |
| one line changed                         | plans that SKU again, skips the others           |
| one line gone                            | still deletes its SKU                            |
| a SKU whose last apply failed, or pending| plans it again                                   |
| other rules, or rules reading the clock  | skips nothing                                    |
| a row applied before (no hash)           | plans it, notes the hash: skipped the next time  |
| an invalid record, the rule file edited  | plans it again (its reasons point into the file)  |
| an apply (no unchanged SKU is sent)      | skips the same lines without reading their rows  |
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import engine
from engine.project._assembly import catalog_records, open_marketplace, open_state
from engine.project._config import load_project
from engine.state._store import SCHEMA_VERSION, StateStore, applied_from
from engine.sync import _plan, _source
from engine.sync._plan import Change, Planner
from marketplaces.sandbox import Sandbox
from tests._harness import Loopback, run_apply, subset, tradepost, write_project
from tests.conftest import ROOT
from tests.test_state_contract import server, url  # noqa: F401  # the two backends' fixtures

LINES = 60
MARKETPLACE = "google"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.jsonl"
    lines = (ROOT / "examples" / "catalog.jsonl").read_text(encoding="utf-8").splitlines()[:LINES]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state.sqlite") as store:
        yield store


def plan(catalog: Path, state: StateStore, rules: Path = ROOT / "rules") -> tuple[list[Change], Planner]:
    """Plan the catalog as `tradepost plan` does (a project's catalog, its connector options)."""
    config = _config(catalog, rules)
    project = load_project(config)
    run = open_marketplace(project, MARKETPLACE)
    planner = run.planner(state)
    return list(planner.changes(catalog_records(project, run.trade_policy))), planner


def _config(catalog: Path, rules: Path = ROOT / "rules") -> Path:
    config = catalog.parent / "tradepost.yaml"
    config.write_text(
        f"source: {{type: file, path: {catalog}}}\nstate: {catalog.parent / 'state.sqlite'}\n"
        f"marketplaces:\n  {MARKETPLACE}: {{rules: {rules / 'google.yaml'}}}\n",
        encoding="utf-8",
    )
    return config


def apply(state: StateStore, changes: list[Change]) -> None:
    """Record the changes as the executor does when they land: each row with its source hash."""
    for change in changes:
        if change.op == "delete":
            state.record_deleted(MARKETPLACE, [change.sku_id])
        elif change.op in ("create", "update") and change.listing is not None:
            state.record_applied(MARKETPLACE, [applied_from(change.listing, None, change.source_hash)])


def edit_line(catalog: Path, number: int, old: str, new: str) -> str:
    """Change one line of the catalog (1-based); the SKU id of that line."""
    lines = catalog.read_text(encoding="utf-8").splitlines()
    assert old in lines[number - 1]
    lines[number - 1] = lines[number - 1].replace(old, new, 1)
    catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(engine.CatalogRecord.parse_json(lines[number - 1]).sku.id)


def applied_first(catalog: Path, state: StateStore) -> list[Change]:
    changes, planner = plan(catalog, state)
    assert planner.summary.skipped == 0 and planner.summary.ops["create"] > 40
    apply(state, changes)
    return [c for c in changes if c.op == "create"]


def test_the_same_catalog_is_skipped_whole_and_plans_as_unchanged(catalog: Path, state: StateStore) -> None:
    created = applied_first(catalog, state)
    changes, planner = plan(catalog, state)
    unchanged = {c.sku_id for c in changes if c.skipped and c.op == "unchanged"}
    assert unchanged == {c.sku_id for c in created}
    assert len(created) == planner.summary.ops["unchanged"]
    assert not planner.summary.has_changes
    assert all(
        c.listing is None and c.before is not None for c in changes if c.skipped and c.op == "unchanged"
    )
    # What is not applied and not settled (a malformed line) is planned in full every time.
    assert planner.summary.skipped == len(created) + planner.summary.excluded
    assert planner.summary.to_dict()["skipped"] == planner.summary.skipped
    assert planner.summary.ops["invalid"] == sum(1 for c in changes if c.op == "invalid" and not c.skipped)
    assert planner.summary.records == LINES


def test_a_changed_line_is_planned_again_and_the_others_skipped(catalog: Path, state: StateStore) -> None:
    created = applied_first(catalog, state)
    sku = edit_line(catalog, _line_of(catalog, created[0].sku_id), '"name": "', '"name": "New ')
    changes, planner = plan(catalog, state)
    (changed,) = [c for c in changes if c.sku_id == sku]
    assert not changed.skipped and changed.op == "update" and "content" in changed.kinds
    assert planner.summary.skipped == len(created) - 1


def test_a_removed_line_is_still_deleted(catalog: Path, state: StateStore) -> None:
    created = applied_first(catalog, state)
    gone = created[3].sku_id
    number = _line_of(catalog, gone)
    lines = catalog.read_text(encoding="utf-8").splitlines()
    catalog.write_text("\n".join(lines[: number - 1] + lines[number:]) + "\n", encoding="utf-8")
    changes, planner = plan(catalog, state)
    assert [c.sku_id for c in changes if c.op == "delete"] == [gone]
    assert planner.summary.skipped == len(created) - 1


@pytest.mark.parametrize("unsettled", ["failed", "pending"])
def test_a_sku_whose_last_apply_failed_or_is_pending_is_planned_again(
    catalog: Path, state: StateStore, unsettled: str
) -> None:
    created = applied_first(catalog, state)
    sku = created[5].sku_id
    if unsettled == "failed":
        state.record_error(MARKETPLACE, sku, "500 from the marketplace")
    else:
        state.record_pending(MARKETPLACE, sku, "submission-1")
    changes, planner = plan(catalog, state)
    (change,) = [c for c in changes if c.sku_id == sku]
    assert not change.skipped and change.listing is not None
    assert planner.summary.skipped == len(created) - 1


def test_other_rules_skip_nothing(catalog: Path, state: StateStore, tmp_path: Path) -> None:
    applied_first(catalog, state)
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    google = rules / "google.yaml"
    google.write_text(google.read_text(encoding="utf-8").replace("* 1.05", "* 1.06", 1), encoding="utf-8")
    _, planner = plan(catalog, state, rules)
    assert planner.summary.skipped == 0


def test_rules_reading_the_clock_are_never_skipped(
    catalog: Path, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No function reads the clock today; were one added, a rule file calling it plans every record."""
    applied_first(catalog, state)
    monkeypatch.setattr(_plan, "CLOCK_FUNCTIONS", frozenset({"today"}))
    _, planner = plan(catalog, state)
    assert planner.summary.skipped > 0  # google.yaml calls no today()
    monkeypatch.setattr(_plan, "CLOCK_FUNCTIONS", frozenset({"today", "truncate"}))  # it calls truncate()
    _, planner = plan(catalog, state)
    assert not planner.incremental and planner.summary.skipped == 0


PURE_FUNCTIONS = [
    "abs",
    "available_in",
    "ceil",
    "contains",
    "ending",
    "endswith",
    "floor",
    "gtin_valid",
    "len",
    "lookup",
    "lower",
    "matches",
    "max",
    "min",
    "number",
    "reject",
    "replace",
    "round",
    "round_to",
    "slug",
    "startswith",
    "strip_html",
    "text",
    "title",
    "trim",
    "truncate",
    "upper",
]
"""Every function of the rule language, judged: none reads the clock (nor any other outside state)."""


def test_every_function_of_the_language_is_judged_not_to_read_the_clock() -> None:
    """A function added to the language fails here until it is judged: pure, or in CLOCK_FUNCTIONS."""
    from engine.rules._functions import FUNCTIONS

    assert sorted(FUNCTIONS) == sorted(PURE_FUNCTIONS + list(_plan.CLOCK_FUNCTIONS))
    assert not _plan.CLOCK_FUNCTIONS


def test_rows_applied_without_a_hash_are_planned_once_then_skipped(catalog: Path, state: StateStore) -> None:
    changes, _ = plan(catalog, state)
    rows = [applied_from(c.listing) for c in changes if c.listing is not None]  # as before schema 4
    state.record_applied(MARKETPLACE, rows)
    fingerprint = state.fingerprint(MARKETPLACE)
    _, planner = plan(catalog, state)
    assert planner.summary.skipped == 0 and planner.summary.ops["unchanged"] == len(rows)
    assert state.fingerprint(MARKETPLACE) == fingerprint  # a saved plan stays valid
    _, planner = plan(catalog, state)
    assert planner.summary.skipped == len(rows)


def test_a_duplicate_of_a_skipped_line_is_still_reported(catalog: Path, state: StateStore) -> None:
    created = applied_first(catalog, state)
    lines = catalog.read_text(encoding="utf-8").splitlines()
    number = _line_of(catalog, created[0].sku_id)
    catalog.write_text("\n".join([*lines, lines[number - 1]]) + "\n", encoding="utf-8")
    changes, planner = plan(catalog, state)
    (duplicate,) = [c for c in changes if c.op == "invalid" and c.sku_id == created[0].sku_id]
    assert f"duplicate of line {number}" in duplicate.reasons[-1].message
    assert planner.summary.skipped == len(created)


def test_apply_records_the_hash_and_the_cli_says_how_many_were_skipped(
    loopback: Loopback, tmp_path: Path
) -> None:
    box: Sandbox = loopback.sandbox(subset(60))
    config = write_project(box, tmp_path / "project", catalog_from_vtex=False)
    first = run_apply(config, MARKETPLACE, box)
    assert first.applied > 20 and first.failed == 0
    project = load_project(config)
    run = open_marketplace(project, MARKETPLACE)
    with open_state(project) as state:
        planner = run.planner(state)
        changes = list(planner.changes(catalog_records(project, run.trade_policy)))
    invalid = sum(1 for c in changes if c.op == "invalid" and c.skipped)
    assert planner.summary.skipped == state_count(config) + planner.summary.excluded + invalid > 20
    assert not planner.summary.has_changes
    assert len(changes) == planner.summary.records - planner.summary.excluded
    code, out, _ = tradepost("plan", "-c", str(config), "-m", MARKETPLACE)
    assert (
        code == 0 and f"; {planner.summary.skipped} records not parsed: the same as when last planned" in out
    )
    code, out, _ = tradepost(
        "plan", "-c", str(config), "-m", MARKETPLACE, "--no-incremental", "--format", "jsonl"
    )
    assert code == 0 and '"skipped"' not in out.splitlines()[-1]
    assert all('"after"' in line for line in out.splitlines() if '"op": "unchanged"' in line)
    sku = changes[0].sku_id
    code, out, _ = tradepost("plan", "-c", str(config), "-m", MARKETPLACE, "--sku", sku, "--format", "jsonl")
    assert code == 0 and '"after"' in out.splitlines()[0]  # --sku evaluates what it shows


def state_count(config: Path) -> int:
    with open_state(load_project(config)) as state:
        return state.count(MARKETPLACE)


def test_jsonl_of_a_first_plan_is_byte_identical_to_before(catalog: Path) -> None:
    """Pinned against the output of main before the incremental pass (its commit 64a2fc1)."""
    code, out, err = tradepost("plan", "-c", str(_config(catalog)), "--format", "jsonl")
    assert code == 0, err
    assert out == (ROOT / "tests" / "fixtures" / "plan_google_60.jsonl").read_text(encoding="utf-8")


def test_a_version_3_store_migrates_to_6(url: str) -> None:  # noqa: F811  # the fixture imported above
    with StateStore(url) as store:
        store.db.execute("DROP INDEX listings_source")
        store.db.execute("ALTER TABLE listings DROP COLUMN source_hash")
        store.db.execute("ALTER TABLE withdrawn DROP COLUMN content_hash")
        store.db.execute("DROP TABLE excluded_sources")
        store.db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with StateStore(url) as store:
        (version,) = store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert int(version) == SCHEMA_VERSION == 6
        assert "source_hash" in store.dialect.columns(store.db, "listings")
        assert "content_hash" in store.dialect.columns(store.db, "withdrawn")
        assert store.unchanged_sources(MARKETPLACE, ["0" * 32]) == {}
        assert store.excluded_sources(MARKETPLACE, ["0" * 32]) == {}
        assert not store.has_sources(MARKETPLACE)


def _line_of(catalog: Path, sku_id: str) -> int:
    for number, line in enumerate(catalog.read_text(encoding="utf-8").splitlines(), 1):
        if engine.CatalogRecord.parse_json(line).sku.id == sku_id:
            return number
    raise AssertionError(sku_id)


def test_a_record_not_selected_is_skipped_until_its_sku_is_listed(tmp_path: Path, state: StateStore) -> None:
    """Nothing is applied for a SKU the rules do not select: its record is settled from the first plan."""
    catalog = tmp_path / "catalog.jsonl"
    shutil.copy(ROOT / "examples" / "catalog.jsonl", catalog)
    changes, first = plan(catalog, state)
    assert first.summary.excluded >= 3 and first.summary.skipped == 0
    apply(state, changes)
    changes, again = plan(catalog, state)
    assert again.summary.excluded == first.summary.excluded
    invalid = sum(1 for c in changes if c.op == "invalid" and c.skipped)
    assert again.summary.skipped == first.summary.ops["create"] + first.summary.excluded + invalid
    assert not [c for c in changes if c.op == "delete"]
    # A listing appears for one of them (a state rebuild read it back): the plan withdraws it.
    listed = next(c for c in changes if c.op == "unchanged" and c.before is not None).before
    assert listed is not None
    excluded = _excluded_sku(catalog, state, {c.sku_id for c in changes})
    state.record_applied(MARKETPLACE, [dataclasses.replace(listed, sku_id=excluded, source_hash=None)])
    changes, third = plan(catalog, state)
    (withdrawn,) = [c for c in changes if c.op == "delete"]
    assert withdrawn.sku_id == excluded and withdrawn.reasons[0].code == "TP920"  # not selected, said why
    assert third.summary.excluded == first.summary.excluded


def _excluded_sku(catalog: Path, state: StateStore, planned: set[str]) -> str:
    """A SKU of the catalog the plan made no change for: one its rules do not select."""
    for line in catalog.read_text(encoding="utf-8").splitlines():
        try:
            sku_id = str(engine.CatalogRecord.parse_json(line).sku.id)
        except engine.MalformedRecord:
            continue
        if sku_id not in planned:
            return sku_id
    raise AssertionError("no SKU is excluded")


def test_a_version_4_store_keeps_its_notes_as_records_not_selected(url: str) -> None:  # noqa: F811
    with StateStore(url) as store:
        store.db.execute("ALTER TABLE excluded_sources DROP COLUMN reasons")
        store.db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        store.db.execute(
            "INSERT INTO excluded_sources (marketplace, sku_id, source_hash) VALUES (?, ?, ?)",
            (MARKETPLACE, "42", "a" * 32),
        )
    with StateStore(url) as store:
        (version,) = store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert int(version) == SCHEMA_VERSION
        assert store.excluded_sources(MARKETPLACE, ["a" * 32]) == {"a" * 32: ("42", None)}


def test_invalid_records_are_reported_again_unread(whole: Path, state: StateStore) -> None:
    first, _ = plan(whole, state)
    apply(state, first)
    changes, planner = plan(whole, state)
    invalid = {c.sku_id: c for c in first if c.op == "invalid"}
    again = {c.sku_id: c for c in changes if c.op == "invalid"}
    assert sorted(again) == sorted(invalid) and len(invalid) >= 3
    assert [again[sku].to_json() for sku in sorted(again)] == [
        invalid[sku].to_json() for sku in sorted(again)
    ]
    # A malformed line (one that does not parse) keeps no reasons: its message names its line.
    skipped = {sku for sku, c in again.items() if c.skipped}
    assert skipped == {sku for sku, c in invalid.items() if all(r.code != "TP930" for r in c.reasons)}
    assert skipped and skipped != set(invalid)
    assert planner.summary.ops["invalid"] == len(invalid)


@pytest.fixture
def whole(tmp_path: Path) -> Path:
    """The bundled catalog whole: its invalid records come from the rules as well as the parser."""
    path = tmp_path / "whole" / "catalog.jsonl"
    path.parent.mkdir()
    shutil.copy(ROOT / "examples" / "catalog.jsonl", path)
    return path


def test_an_invalid_record_is_read_again_once_the_rule_file_moves_its_rules(
    whole: Path, state: StateStore, tmp_path: Path
) -> None:
    catalog = whole
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    applied_first_with(catalog, state, rules)
    changes, _ = plan(catalog, state, rules)
    assert any(c.op == "invalid" and c.skipped for c in changes)
    text = (rules / "google.yaml").read_text(encoding="utf-8")
    (rules / "google.yaml").write_text("# a comment moves every rule a line down\n" + text, encoding="utf-8")
    changes, _ = plan(catalog, state, rules)
    invalid = [c for c in changes if c.op == "invalid"]
    assert invalid and not any(c.skipped for c in invalid)
    located = [r.span for c in invalid for r in c.reasons if r.span is not None]
    assert located  # the reasons point at the rules' new lines, read from the file as it is now
    lines = (rules / "google.yaml").read_text(encoding="utf-8").splitlines()
    assert all(span.line <= len(lines) and lines[span.line - 1].strip() for span in located)
    changes, _ = plan(catalog, state, rules)  # noted again with the new positions
    again = sorted((c for c in changes if c.op == "invalid"), key=lambda c: c.sku_id)
    assert [c.to_json() for c in again] == [c.to_json() for c in sorted(invalid, key=lambda c: c.sku_id)]
    assert any(c.skipped for c in again)


def test_garbled_reasons_in_the_state_are_planned_in_full(whole: Path, state: StateStore) -> None:
    catalog = whole
    applied_first(catalog, state)
    state.db.execute("UPDATE excluded_sources SET reasons = '[\"not\", 3' WHERE reasons IS NOT NULL")
    changes, _ = plan(catalog, state)
    invalid = [c for c in changes if c.op == "invalid"]
    assert invalid and not any(c.skipped for c in invalid)


def test_apply_skips_the_same_lines_without_reading_their_rows(catalog: Path, state: StateStore) -> None:
    created = applied_first(catalog, state)
    shown, _ = plan(catalog, state)
    config = _config(catalog)
    project = load_project(config)
    run = open_marketplace(project, MARKETPLACE)
    planner = run.planner(state)
    planner.skipped_rows = False
    applying = list(planner.changes(catalog_records(project, run.trade_policy)))
    assert [(c.op, c.sku_id, c.skipped) for c in applying] == [(c.op, c.sku_id, c.skipped) for c in shown]
    assert {c.sku_id for c in applying if c.op == "unchanged" and c.before is None} == {
        c.sku_id for c in created
    }


def applied_first_with(catalog: Path, state: StateStore, rules: Path) -> None:
    changes, _ = plan(catalog, state, rules)
    apply(state, changes)


def test_a_first_plan_looks_no_sku_up_and_the_next_looks_each_up(
    catalog: Path, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    get_many = StateStore.get_many

    def counted(self: StateStore, marketplace: str, sku_ids: list[str]) -> object:
        asked.extend(sku_ids)
        return get_many(self, marketplace, sku_ids)

    monkeypatch.setattr(StateStore, "get_many", counted)
    created = applied_first(catalog, state)
    assert asked == []  # no row yet: nothing to find, no statement per batch
    lines = catalog.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = lines[0].replace('"name": "', '"name": "Novo ', 1)
    assert changed != lines[0]
    catalog.write_text(changed + "".join(lines[1:]), encoding="utf-8")
    changes, _ = plan(catalog, state)
    read_again = [c.sku_id for c in changes if not c.skipped]
    assert asked == read_again  # the lines read again are looked up; the lines skipped are not
    assert 0 < len(read_again) < len(lines) // 4
    assert [c.op for c in changes if c.sku_id == created[0].sku_id] == ["update"]


def test_an_unchanged_catalog_is_never_held_whole_while_it_is_skipped(
    catalog: Path, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A skipped line once waited on a side list until the next record was read: a catalog
    # unchanged from end to end was held whole (a million lines, some 200 MB) before the
    # planner saw one. Each skipped line now comes out in its place, so changes flow while the
    # file is still being read.
    created = applied_first(catalog, state)
    monkeypatch.setattr(_source, "SKIP_BATCH", 5)  # hashes looked up 5 at a time
    monkeypatch.setattr(_plan, "LINES", 10)  # and planned 10 lines at a time
    project = load_project(_config(catalog))
    run = open_marketplace(project, MARKETPLACE)
    records = catalog_records(project, run.trade_policy)
    read_when: list[int] = []
    changes = []
    for change in run.planner(state).changes(records):
        read_when.append(records.source.count + records.source.errors)
        changes.append(change)
    lines = len(catalog.read_text(encoding="utf-8").splitlines())
    assert read_when[0] <= 10 + 5 < lines  # the first change came out with a few lines read
    assert all(c.skipped for c in changes if c.op == "unchanged") and len(changes) >= len(created)
    assert [c.sku_id for c in changes if c.op == "unchanged"] == [c.sku_id for c in created]  # in order


def test_a_wrapper_that_cannot_yield_skipped_lines_is_read_whole(catalog: Path, state: StateStore) -> None:
    # The planner skips lines only for a catalog that yields them in their place (items()): a
    # wrapper of a file source without it would drop them, and each would become a delete.
    created = applied_first(catalog, state)

    class Wrapped:
        def __init__(self, source: _source.FileSource) -> None:
            self.source = source

        def __iter__(self) -> Iterator[object]:
            return iter(self.source)

    run = open_marketplace(load_project(_config(catalog)), MARKETPLACE)
    planner = run.planner(state)
    changes = list(planner.changes(Wrapped(_source.FileSource(catalog))))  # type: ignore[arg-type]
    assert planner.summary.skipped == 0 and not any(c.op == "delete" for c in changes)
    assert {c.sku_id for c in changes if c.op == "unchanged"} == {c.sku_id for c in created}
