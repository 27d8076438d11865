"""Periodic reconciliation: a full apply (and a full plan) is recorded per marketplace and shown.

Given a Google stand-in holding what a first apply sent, each test runs `tradepost plan`,
`apply` and `status` as a user types them and reads what the state store recorded.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from cli._plan import age
from engine.project import record_full_apply
from engine.project._assembly import open_state
from engine.project._config import load_project
from engine.state import FullPass, NotificationQueue, StateStore
from engine.state._queue import Change
from engine.sync import ApplySummary
from marketplaces.sandbox import Sandbox, read_catalog
from tests._harness import ROOT, Loopback, tradepost, write_project

RECORDS = read_catalog(ROOT / "examples" / "catalog.jsonl")[:30]


class Shop:
    def __init__(self, box: Sandbox, config: Path, catalog: Path) -> None:
        self.box, self.config, self.catalog = box, config, catalog

    def tradepost(self, *args: str) -> tuple[int, str, str]:
        return tradepost(*args, "-c", str(self.config))

    def last(self, kind: str) -> FullPass | None:
        with open_state(load_project(self.config)) as state:
            return state.last_full_pass("google", kind)

    def keep(self, records: list[dict[str, object]]) -> None:
        self.catalog.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


@pytest.fixture
def shop(loopback: Loopback, tmp_path: Path) -> Shop:
    """A project with only Google, whose catalog is a file the test rewrites; nothing applied yet."""
    box = loopback.sandbox(RECORDS)
    config = write_project(box, tmp_path / "project", catalog_from_vtex=False, rate=1000)
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    document["source"]["path"] = str(tmp_path / "catalog.jsonl")
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
    shop = Shop(box, config, tmp_path / "catalog.jsonl")
    shop.keep(RECORDS)
    return shop


def test_a_full_apply_records_its_time_and_counts(shop: Shop) -> None:
    assert shop.last("apply") is None
    before = time.time()
    code, _, err = shop.tradepost("apply", "-m", "google")
    assert code == 0, err
    done = shop.last("apply")
    assert done is not None and before <= done.finished_at <= time.time()
    assert done.applied > 20 and done.failed == 0


def test_an_apply_of_a_saved_plan_is_not_a_full_pass(shop: Shop, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    code, _, err = shop.tradepost("plan", "-m", "google", "-o", str(plan_file))
    assert code == 0, err
    code, _, err = shop.tradepost("apply", str(plan_file), "-m", "google")
    assert code == 0, err
    assert shop.last("apply") is None
    assert shop.last("plan") is not None  # the plan itself compared everything


def test_a_plan_restricted_to_skus_is_not_a_full_plan(shop: Shop) -> None:
    code, _, err = shop.tradepost("plan", "-m", "google", "--sku", str(RECORDS[0]["sku"]["id"]))  # type: ignore[index]
    assert code == 0, err
    assert shop.last("plan") is None


def test_an_apply_with_a_failure_is_not_recorded(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.db") as state:
        failed = ApplySummary("google")
        failed.applied, failed.failed = 5, 1
        assert record_full_apply(state, "google", failed) is False
        assert state.last_full_pass("google", "apply") is None
        clean = ApplySummary("google")
        clean.applied = 6
        assert record_full_apply(state, "google", clean) is True
        done = state.last_full_pass("google", "apply")
        assert done is not None and (done.applied, done.failed) == (6, 0)


def test_an_incomplete_catalog_is_not_a_reconciliation(shop: Shop) -> None:
    # Every record, then padding cut short: the catalog is read, but not to its end.
    text = "".join(json.dumps(r) + "\n" for r in RECORDS) + "\n" * 100_000
    shop.catalog.write_bytes(gzip.compress(text.encode(), compresslevel=0)[:-100])
    code, out, err = shop.tradepost("plan", "-m", "google")
    assert code == 0 and "Plan: 29 to create" in out, err  # one record of the 30 is invalid
    assert shop.last("plan") is None
    code, _, err = shop.tradepost("apply", "-m", "google")
    assert code == 0, err  # every change it saw applied
    assert shop.last("apply") is None


def test_status_shows_each_marketplace_in_text_and_json(shop: Shop) -> None:
    code, _, err = shop.tradepost("apply", "-m", "google")
    assert code == 0, err
    code, out, err = shop.tradepost("status")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "notifications queued: 0 (0 being processed)"
    google = next(line for line in lines if line.startswith("google: "))
    assert "last full apply 20" in google and " UTC (" in google and "s ago), " in google
    assert google.endswith("; last full plan never")
    assert "applied, 0 failed" in google
    code, out, err = shop.tradepost("status", "--json")
    assert code == 0, err
    document = json.loads(out)
    applied = document["marketplaces"]["google"]["last_full_apply"]
    assert applied["applied"] > 20 and applied["failed"] == 0 and applied["age_seconds"] >= 0
    assert document["marketplaces"]["google"]["last_full_plan"] is None
    assert document["notifications"]["queued"] == 0


def test_the_plan_says_how_many_notifications_are_queued_and_when_the_last_full_apply_was(
    shop: Shop,
) -> None:
    code, out, _ = shop.tradepost("plan", "-m", "google")
    assert code == 0 and "notifications queued" not in out  # neither a queue nor a record
    code, _, err = shop.tradepost("apply", "-m", "google")
    assert code == 0, err
    with open_state(load_project(shop.config)) as state, NotificationQueue(state) as queue:
        queue.enqueue("1", Change.STOCK, "2026-01-01T00:00:00Z")
        queue.enqueue("2", Change.PRICE, "2026-01-01T00:00:00Z")
    code, out, _ = shop.tradepost("plan", "-m", "google")
    lines = out.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("google Plan: "))
    # The apply finished a moment ago: 0 s, or a few on a loaded machine, never minutes.
    assert re.fullmatch(r"2 notifications queued; last full apply [0-9]s ago", lines[summary + 1]), lines


def test_ages_read_in_the_largest_sensible_unit() -> None:
    assert [age(s) for s in (0, 59, 600, 5 * 3600, 72 * 3600)] == ["0s", "59s", "10min", "5h", "3d"]


def test_a_plan_neither_waits_for_nor_fails_on_a_busy_state(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.db") as writer, StateStore(tmp_path / "state.db") as planner:
        with writer.db:  # another process mid-transaction
            writer.db.execute("BEGIN IMMEDIATE")
            writer.db.execute("INSERT OR REPLACE INTO meta VALUES ('busy', '1')")
            started = time.monotonic()
            assert planner.note_full_pass("google", "plan") is False
            assert time.monotonic() - started < 5
        assert planner.note_full_pass("google", "plan") is True
        assert planner.last_full_pass("google", "plan") is not None
        assert planner.busy_timeout == 30  # restored for the rest of the run
