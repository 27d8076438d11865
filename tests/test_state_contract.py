"""One contract for the state store, checked against both databases: an SQLite file and PostgreSQL.

Every test taking ``url`` runs twice, once per backend, through the public API only (listings,
pending outcomes and per-SKU errors, full passes, locks with leases, the notification queue,
orders' compare-and-set transitions, the schema version). PostgreSQL's own promises follow:
workers taking from the queue at once never share a SKU, processes opening an empty database at
once all find one schema, errors say what to do and never show the password, and a project whose
``state:`` is a ``postgresql://`` URL plans and applies end to end. The PostgreSQL tests start a
throw-away server (``tests/_postgres.py``) and skip, saying why, where it cannot run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from engine.orders._store import OrderStore
from engine.state import Change, NotificationQueue
from engine.state._db import ConflictError, StateError
from engine.state._store import (
    SCHEMA_VERSION,
    AppliedListing,
    LockedError,
    LockLostError,
    StateStore,
)
from tests import _postgres
from tests._harness import Loopback, subset, tradepost, write_project
from tests.test_orderflow import make_order


@pytest.fixture(scope="session")
def server() -> Iterator[_postgres.Server]:
    """This worker's PostgreSQL server, or a skip saying why there is none."""
    started = _postgres.start()
    if isinstance(started, str):
        pytest.skip(f"no PostgreSQL for these tests: {started}")
    yield started
    started.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store's URL on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "state.sqlite")
    server: _postgres.Server = request.getfixturevalue("server")
    return server.url(server.database())


@pytest.fixture
def pg(server: _postgres.Server) -> str:
    """A fresh PostgreSQL database's URL (the PostgreSQL-only tests)."""
    return server.url(server.database())


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    with StateStore(url) as opened:
        yield opened


def listing(
    sku_id: str, product_id: str = "p1", price: str = "10.00", remote_id: str | None = None
) -> AppliedListing:
    return AppliedListing(sku_id, product_id, f"hash-{sku_id}", Decimal(price), None, 3, remote_id)


# -- listings ------------------------------------------------------------------------------------


def test_listings_are_saved_read_counted_and_deleted(store: StateStore) -> None:
    store.record_applied("google", [listing("1", remote_id="R1"), listing("2"), listing("3", "p2")])
    store.record_applied("amazon", [listing("1")])
    assert store.get("google", "1") == listing("1", remote_id="R1")
    assert set(store.get_many("google", ["1", "2", "9"])) == {"1", "2"}
    assert (store.count("google"), store.count("amazon"), store.count("none")) == (3, 1, 0)
    assert (store.has_listings("google"), store.has_listings("none")) == (True, False)
    assert list(store.all_sku_ids("google")) == ["1", "2", "3"]
    before = store.fingerprint("google")
    time.sleep(0.01)
    store.record_applied("google", [listing("1", price="12.50")])  # an update keeps the remote id
    assert store.get("google", "1") == listing("1", price="12.50", remote_id="R1")
    assert store.fingerprint("google") != before
    assert store.with_siblings("google", ["1"]) == {"1", "2"}
    assert store.sku_of_remote("google", "R1") == "1"
    store.record_deleted("google", ["1", "2"])
    assert (store.get("google", "1"), store.count("google")) == (None, 1)
    store.record_deleted("amazon", ["1"])
    assert not store.has_listings("amazon")  # a withdrawn listing is no row to look up
    assert store.withdrawn_remote_id("google", "1") == "R1"
    assert store.sku_of_remote("google", "R1") == "1"  # an order line naming a withdrawn listing
    store.record_applied("google", [listing("1", remote_id="R1")])  # selected again
    assert store.withdrawn_remote_id("google", "1") is None


def test_a_rebuild_replaces_one_marketplace_whole(store: StateStore) -> None:
    store.record_applied("google", [listing("1"), listing("2")])
    store.record_applied("amazon", [listing("1")])
    store.record_pending("google", "2", "token")
    store.replace_marketplace("google", [listing("5", remote_id="R5")], {"6": "R6"})
    assert list(store.all_sku_ids("google")) == ["5"]
    assert (store.withdrawn_remote_id("google", "6"), store.pending("google")) == ("R6", {})
    assert store.count("amazon") == 1


def test_a_plan_finds_the_skus_it_did_not_see(store: StateStore) -> None:
    store.record_applied("google", [listing(str(n)) for n in range(1, 6)])
    store.begin_seen()
    store.add_seen(["1", "3", "3", "9"])
    assert [row.sku_id for row in store.unseen("google")] == ["2", "4", "5"]
    # A plan of some SKUs (a sync batch) looks at those only, in order, whatever their number.
    assert [row.sku_id for row in store.unseen("google", {"5", "3", "2", "7"})] == ["2", "5"]
    assert list(store.unseen("google", set())) == []
    store.begin_seen()  # a second plan in the same run starts empty
    assert len(list(store.unseen("google"))) == 5
    store.record_applied("amazon", [listing(f"{n:05}") for n in range(2500)])  # read in batches
    assert sum(1 for _ in store.unseen("amazon")) == 2500
    among = {f"{n:05}" for n in range(0, 2500, 2)} | {"99999"}  # more than one chunk of ids
    assert [row.sku_id for row in store.unseen("amazon", among)] == sorted(among - {"99999"})
    assert next(iter(store.all_sku_ids("amazon"))) == "00000"  # a stream left unfinished costs nothing
    assert store.count("amazon") == 2500


# -- runs: outcomes still to confirm, per-SKU errors, full passes ------------------------------


def test_records_noted_as_listing_nothing_are_found_by_hash_the_last_note_winning(store: StateStore) -> None:
    invalid = json.dumps(["where", [["TP922", "require", "EAN 'x' is wrong", None]]], ensure_ascii=False)
    assert store.note_excluded("google", [("1", "h1", None), ("2", "h2", invalid), ("3", "h3", None)]) is True
    # Noted again: a new hash and reasons replace the old; the same SKU twice in one call, the last.
    assert (
        store.note_excluded("google", [("3", "h3b", invalid), ("4", "h4", None), ("4", "h4b", None)]) is True
    )
    assert store.note_excluded("amazon", [("1", "h1", invalid)]) is True  # another marketplace's own
    hashes = ["h1", "h2", "h3", "h3b", "h4", "h4b", "h9"]
    assert store.excluded_sources("google", hashes) == {
        "h1": ("1", None),
        "h2": ("2", invalid),
        "h3b": ("3", invalid),
        "h4b": ("4", None),
    }
    assert store.excluded_sources("amazon", hashes) == {"h1": ("1", invalid)}
    assert store.note_excluded("google", []) is True
    # A SKU listed since is planned, not skipped: its note is not found.
    store.record_applied("google", [listing("2")])
    assert set(store.excluded_sources("google", hashes)) == {"h1", "h3b", "h4b"}


def test_pending_outcomes_errors_and_full_passes_are_kept_per_marketplace(store: StateStore) -> None:
    store.record_pending("google", "1", "first")
    store.record_pending("google", "1", "second")
    store.record_pending("amazon", "2", "other")
    assert store.pending("google") == {"1": "second"}
    store.clear_pending("google", "1")
    assert store.pending("google") == {}
    store.record_error("google", "1", "price: must be a number")
    store.record_error("google", "1", "ean: invalid")
    assert store.errors("google") == {"1": "ean: invalid"}
    store.clear_error("google", "1")
    assert store.errors("google") == {}
    assert store.last_full_pass("google", "apply") is None
    store.record_full_pass("google", "apply", applied=7, failed=0)
    assert store.note_full_pass("google", "plan") is True
    done = store.last_full_pass("google", "apply")
    assert done is not None and (done.applied, done.failed) == (7, 0)
    assert abs(done.finished_at - time.time()) < 60
    assert store.last_full_pass("google", "plan") is not None


# -- locks with leases ---------------------------------------------------------------------------


def test_a_lock_is_held_renewed_lost_and_released(url: str) -> None:
    # 2 s leases: renewed every lease / 3, a 1 s lease ran out under CI's load (a renewal late 1 s)
    with StateStore(url, lease=2.0) as first, StateStore(url, lease=2.0) as second:
        first.acquire_lock("google", "first run")
        time.sleep(2.4)
        with pytest.raises(LockedError, match=r"^google is locked by first run"):
            second.acquire_lock("google", "second run")
        assert first._leases["google"].renewals >= 2
        first.release_lock("google")
        second.acquire_lock("google", "second run")  # released: free at once
        second._leases["google"].stop()  # hung: its process lives but renews nothing
        time.sleep(2.1)
        first.acquire_lock("google", "third run")  # the lease ran out: taken over
        holder = first.lock_holder("google")
        assert holder is not None and holder.holder == "third run"
        with pytest.raises(LockLostError):
            second.get("google", "1")
        second.release_lock("google")  # deletes nothing of another run's
        assert first.lock_holder("google") is not None
        assert first.break_lock("google") is not None
        deadline = time.monotonic() + 3
        while first._leases["google"].lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LockLostError, match="released by hand"):
            first.count("google")
        first.release_lock("google")


# -- the notification queue ----------------------------------------------------------------------


def test_the_queue_merges_leases_releases_and_forgets_what_every_marketplace_did(store: StateStore) -> None:
    with NotificationQueue(store) as queue:
        queue.enqueue("1", Change.PRICE, "2026-01-01T10:00:00")
        queue.enqueue("1", Change.STOCK, "2026-01-01T09:00:00")  # older date: the newest is kept
        queue.enqueue("2", Change.CATALOG, "2026-01-01T10:00:00")
        assert queue.counts().queued == 2
        first = queue.take(1)
        assert [(t.sku_id, t.changes, t.changed_at, t.version) for t in first] == [
            ("1", Change.PRICE | Change.STOCK, "2026-01-01T10:00:00", 2)
        ]
        assert (queue.counts().leased, [t.sku_id for t in queue.take(10)]) == (1, ["2"])
        assert queue.take(10) == []  # both leased
        queue.release(first)
        (again,) = queue.take(10)
        assert again.sku_id == "1"
        assert queue.done([again], "google", ["google", "amazon"]) == 0
        queue.release([again])
        (third,) = queue.take(10)
        assert third.done_for == frozenset({"google"})
        queue.enqueue("1", Change.REMOVED, "2026-01-01T11:00:00")  # merged while taken: read again
        assert queue.done([third], "amazon", ["google", "amazon"]) == 0
        queue.release([third])
        (short,) = queue.take(10, lease=0)  # "2"'s lease is 300 s; this one's runs out at once
        (back,) = queue.take(10)
        assert (short.sku_id, back.sku_id, back.version, back.done_for) == ("1", "1", 3, frozenset())
        assert queue.done([back], "google", ["google"]) == 1
        counts = queue.counts()
        assert (counts.queued, counts.leased) == (1, 1)
        assert counts.oldest_received_at is not None


def test_notifications_enqueued_at_once_merge_in_their_order(store: StateStore) -> None:
    """``enqueue_many``: one transaction, merged as the same notifications one by one would be."""
    with NotificationQueue(store) as queue:
        queue.enqueue("1", Change.CATALOG, "2026-01-01T08:00:00")
        queue.enqueue_many(
            [
                ("1", Change.PRICE, "2026-01-01T10:00:00"),
                ("2", Change.STOCK, "2026-01-01T10:00:00"),
                ("1", Change.STOCK, "2026-01-01T09:00:00"),  # older date: the newest is kept
            ]
        )
        queue.enqueue_many([])
        taken = {t.sku_id: (t.changes, t.changed_at, t.version) for t in queue.take(10)}
    assert taken == {
        "1": (Change.CATALOG | Change.PRICE | Change.STOCK, "2026-01-01T10:00:00", 3),
        "2": (Change.STOCK, "2026-01-01T10:00:00", 1),
    }


def test_notifications_arriving_together_commit_together_and_fail_together(store: StateStore) -> None:
    """Group commit: many threads enqueueing at once share transactions (fewer commits than
    notifications), each returns only once its own is committed, and a failed transaction fails
    every caller in it with nothing of theirs queued."""
    with NotificationQueue(store) as queue:
        commits: list[int] = []
        commit = queue._commit

        def slow_commit(batch: list[Any]) -> None:
            time.sleep(0.02)  # a commit's fsync, long enough for others to arrive meanwhile
            commits.append(len(batch))
            commit(batch)

        queue._commit = slow_commit  # type: ignore[method-assign]
        errors: list[BaseException] = []

        def notify(thread: int) -> None:
            try:
                for n in range(10):
                    queue.enqueue(
                        f"{(thread * 10 + n) % 150}", Change(1 << (n % 3)), f"2026-01-01T10:00:{n:02}"
                    )
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=notify, args=(i,)) for i in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert sum(commits) == 300 and len(commits) < 150, commits
        taken = {item.sku_id: item for item in queue.take(1000)}
        assert len(taken) == 150
        # each SKU was notified twice (threads t and t + 15), with the same flags: merged, version 2
        assert {(sku, item.changes, item.version) for sku, item in taken.items()} == {
            (str(k), Change(1 << (k % 10 % 3)), 2) for k in range(150)
        }

        def failing(batch: list[Any]) -> None:
            time.sleep(0.05)
            raise RuntimeError("disk full")

        queue._commit = failing  # type: ignore[method-assign]
        outcomes: list[str] = []

        def one(sku: str) -> None:
            try:
                queue.enqueue(sku, Change.STOCK, "2026-01-01T11:00:00")
                outcomes.append("queued")
            except RuntimeError as exc:
                outcomes.append(str(exc))

        threads = [threading.Thread(target=one, args=(f"new-{i}",)) for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert outcomes == ["disk full"] * 5
        queue._commit = commit  # type: ignore[method-assign]
        assert queue.counts().queued == 150  # none of the failed ones


# -- orders --------------------------------------------------------------------------------------


def test_orders_move_by_compare_and_set(store: StateStore) -> None:
    orders = OrderStore(store)
    order = make_order("A1", ("10", 1, "100.00"))
    assert orders.insert(order, "held", {"decision": "hold"}, "received") is True
    assert orders.insert(order, "approved", {}, "received") is False  # delivered twice: one row
    stored = orders.get("mercadolibre", "A1")
    assert stored is not None and stored.state == "held"
    assert orders.transition(stored, "approved", "approved by hand") is True
    assert orders.transition(stored, "rejected", "stale") is False  # read as held: another moved it
    approved = orders.get("mercadolibre", "A1")
    assert approved is not None
    orders.record_error(approved, "VTEX said no", retryable=True)
    failing = orders.get("mercadolibre", "A1")
    assert failing is not None and (failing.error, failing.error_retryable, failing.attempts) == (
        "VTEX said no",
        True,
        1,
    )
    assert orders.transition(failing, "placed", "placed", vtex_order_id="V-1") is True
    placed = orders.get("mercadolibre", "A1")
    assert placed is not None and (placed.vtex_order_id, placed.error, placed.attempts) == ("V-1", None, 0)
    assert [o.order_id for o in orders.find("V-1")] == ["A1"]
    orders.record_shipment(placed, "NF-1", [("10", 1)])
    orders.record_shipment(placed, "NF-1", [("10", 1)])
    assert orders.confirmed_shipments("mercadolibre", "A1") == {"NF-1": [("10", 1)]}
    assert orders.transition(placed, "shipped", "shipped") is True
    shipped = orders.get("mercadolibre", "A1")
    assert shipped is not None and shipped.order.buyer.name is None  # personal data erased
    assert [e["event"] for e in orders.events("mercadolibre", "A1")] == [
        "received",
        "approved by hand",
        "error",
        "placed",
        "shipment confirmed",
        "shipment confirmed",
        "shipped",
    ]
    assert orders.counts() == {"shipped": 1}
    assert [o.order_id for o in orders.select(states=["shipped"])] == ["A1"]
    assert list(orders.select(states=[])) == []
    orders.set_cursor("mercadolibre", "2026-01-01")
    orders.set_cursor("mercadolibre", "2026-01-02")
    assert orders.cursor("mercadolibre") == "2026-01-02"
    orders.record_unreadable("mercadolibre", "B2", "bad")
    orders.record_unreadable("mercadolibre", "B2", "worse")
    assert orders.unreadable() == {("mercadolibre", "B2"): "worse"}
    orders.clear_unreadable("mercadolibre", "B2")
    assert orders.unreadable("mercadolibre") == {}


# -- schema version ------------------------------------------------------------------------------


def test_the_schema_version_is_the_same_on_both_and_a_newer_one_is_refused(url: str) -> None:
    with StateStore(url) as store:
        OrderStore(store)
        (version,) = store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert int(version) == SCHEMA_VERSION
    with StateStore(url) as store:  # opened again: nothing to create or migrate
        store.db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match=r"is of a newer version \(99\); upgrade tradepost$"):
        StateStore(url)


# -- PostgreSQL: several processes at once -------------------------------------------------------


def _together(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(0..count-1)`` in threads, each on connections of its own; re-raise the first error."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            start.wait()
            work(n)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]


def test_workers_taking_from_the_queue_at_once_never_get_the_same_sku(pg: str) -> None:
    with StateStore(pg) as store, NotificationQueue(store) as queue:
        for n in range(600):
            queue.enqueue(f"{n:03}", Change.STOCK, "2026-01-01T00:00:00")
    taken: list[list[str]] = [[] for _ in range(4)]
    connected = threading.Barrier(4)  # none takes before all are connected (opening one is slow)

    def worker(n: int) -> None:
        with StateStore(pg) as store, NotificationQueue(store) as queue:
            connected.wait()
            while batch := queue.take(7):
                taken[n] += [item.sku_id for item in batch]

    _together(4, worker)
    everything = [sku for batch in taken for sku in batch]
    assert sorted(everything) == [f"{n:03}" for n in range(600)]  # each SKU once, none lost
    assert all(taken)  # all four took some: they really ran at once


def test_processes_opening_an_empty_database_at_once_find_one_schema(pg: str) -> None:
    def open_it(n: int) -> None:
        with StateStore(pg) as store:
            OrderStore(store)

    _together(6, open_it)
    with StateStore(pg) as store:
        assert store.db.execute("SELECT count(*) FROM meta WHERE key = 'schema_version'").fetchone() == (1,)


def test_only_one_of_several_runs_taking_a_lock_at_once_gets_it(pg: str) -> None:
    won: list[int] = []

    def run(n: int) -> None:
        with StateStore(pg) as store:
            try:
                store.acquire_lock("google", f"run {n}")
            except LockedError:
                return
            won.append(n)
            time.sleep(0.3)
            store.release_lock("google")

    _together(5, run)
    assert len(won) == 1


def test_a_transaction_the_database_rolled_back_is_run_again(pg: str) -> None:
    attempts: list[int] = []
    with StateStore(pg) as store:

        def work() -> int:
            attempts.append(1)
            if len(attempts) < 3:
                raise ConflictError("serialization failure")
            return 7

        assert store.db.retried(work, write=True) == 7
        assert len(attempts) == 3


# -- PostgreSQL: what a user meets -----------------------------------------------------------------


def test_the_password_can_come_from_the_environment_or_pgpassword_and_is_never_shown(
    server: _postgres.Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    database = server.database()
    monkeypatch.setenv("TRADEPOST_TEST_PG", _postgres.PASSWORD)
    with StateStore(server.url(database, "env:TRADEPOST_TEST_PG")) as store:
        assert store.url == f"postgresql://{_postgres.USER}@127.0.0.1:{server.port}/{database}"
        assert _postgres.PASSWORD not in repr(store.dialect) + repr(vars(store))
    monkeypatch.setenv("PGPASSWORD", _postgres.PASSWORD)
    with StateStore(server.url(database, password=None)) as store:
        assert store.count("google") == 0
    monkeypatch.delenv("PGPASSWORD")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StateError) as raised:
        StateStore(server.url(database, "wrong-password-123"))
    message = str(raised.value)
    assert message.startswith(
        f"state store postgresql://{_postgres.USER}@127.0.0.1:{server.port}/{database}: "
    )
    assert "the server refused user tradepost" in message and "PGPASSWORD" in message
    assert "wrong-password-123" not in message + caplog.text


def test_a_missing_database_and_a_server_that_is_not_there_say_what_to_do(server: _postgres.Server) -> None:
    with pytest.raises(StateError, match=r"database nowhere does not exist on 127\.0\.0\.1:\d+; create it"):
        StateStore(server.url("nowhere"))
    with pytest.raises(StateError, match=r"cannot connect to the PostgreSQL server at 127\.0\.0\.1:1 "):
        StateStore(f"postgresql://{_postgres.USER}:{_postgres.PASSWORD}@127.0.0.1:1/db")
    with pytest.raises(StateError) as raised:
        StateStore("postgresql://someone:hunter2-secret@127.0.0.1:1/db")
    assert "hunter2-secret" not in str(raised.value)


def test_a_config_may_name_where_the_password_is_but_not_hold_it(tmp_path: Path) -> None:
    config = tmp_path / "tradepost.yaml"
    config.write_text(
        "source: {type: file, path: catalog.jsonl}\n"
        "state: postgresql://u:hunter2-secret@db/x\n"
        "marketplaces: {}\n"
    )
    code, out, err = tradepost("plan", "-c", str(config))
    assert code != 0 and "holds a password" in out + err, out + err
    assert "hunter2-secret" not in out + err


def test_plan_and_apply_end_to_end_on_postgresql(
    loopback: Loopback, tmp_path: Path, server: _postgres.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = loopback.sandbox(subset(30))
    config = write_project(box, tmp_path / "project")
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    document["state"] = server.url(server.database(), "env:TRADEPOST_TEST_PG")
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
    monkeypatch.setenv("TRADEPOST_TEST_PG", _postgres.PASSWORD)
    code, out, err = tradepost("plan", "-c", str(config), "-m", "google", "--format", "json")
    assert code == 0, err
    creates = [c for c in json.loads(out)["marketplaces"][0]["changes"] if c["op"] == "create"]
    code, out, err = tradepost("apply", "-c", str(config), "-m", "google", "--json")
    assert code == 0, err
    summary = json.loads(out)["marketplaces"][0]
    assert (summary["applied"], summary["failed"]) == (len(creates), 0) and creates
    assert {i["offerId"] for i in box.standins["google"].inputs.values()} == {c["sku_id"] for c in creates}
    code, out, err = tradepost("plan", "-c", str(config), "-m", "google", "--format", "json")
    assert code == 0, err
    assert {c["op"] for c in json.loads(out)["marketplaces"][0]["changes"]} <= {"unchanged", "invalid"}
    assert _postgres.PASSWORD not in out + err
