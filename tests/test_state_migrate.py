"""`tradepost state migrate`: an SQLite state moved into PostgreSQL whole, or not at all.

A state built as a user builds it (applies to the stand-ins, an order pulled and pushed, SKUs
queued by notifications) is migrated with the CLI; every table's rows must then be the same in
PostgreSQL, and the next apply against PostgreSQL must send nothing. Then the refusals (a target
holding data, a source that is missing, not a state store, damaged or newer, a live lock, a
server that is not there), each a message and exit 1 with nothing written and no password shown;
an old-schema source; and a large state copied in bounded memory. The PostgreSQL server is the
throw-away one of ``tests/_postgres.py``; these tests skip, saying why, where it cannot run.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from engine import failpoints
from engine.orders import OrderStore
from engine.state import Change, NotificationQueue, StateStore, migrate_state, open_source
from engine.state._db import StateError
from engine.state._store import SCHEMA_VERSION, AppliedListing
from tests import _postgres
from tests._harness import Loopback, subset, tradepost, tradepost_process, write_project
from tests.test_state_contract import server as server

ENV = "TRADEPOST_TEST_PG"
MARKETPLACES = ("google", "mercadolibre", "amazon")


@pytest.fixture
def pg(server: _postgres.Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh PostgreSQL database's URL, its password named as a config names it (env:)."""
    monkeypatch.setenv(ENV, _postgres.PASSWORD)
    return server.url(server.database(), f"env:{ENV}")


def set_state(config: Path, state: str) -> None:
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    document["state"] = state
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)


def migrate(config: Path, source: Path | str, *args: str) -> tuple[int, str, str]:
    code, out, err = tradepost("state", "migrate", "-c", str(config), "--from", str(source), *args)
    assert _postgres.PASSWORD not in out + err
    assert "Traceback" not in out + err
    return code, out, err


def contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the locks, in a stable order, as Python values."""
    with StateStore(url) as store:
        OrderStore(store)
        tables = store.dialect.tables(store.db) - {"locks"}
        found = {}
        for table in sorted(tables):
            columns = ", ".join(sorted(store.dialect.columns(store.db, table)))
            rows = store.db.execute(f"SELECT {columns} FROM {table}").fetchall()
            found[table] = sorted((tuple(row) for row in rows), key=repr)
    return found


def listing(n: int) -> AppliedListing:
    return AppliedListing(f"{n:06}", f"p{n // 3}", f"hash-{n}", Decimal("19.90"), None, n % 7, f"R{n}")


# -- the whole story, as a user runs it ------------------------------------------------------------


def test_a_state_built_by_the_cli_moves_to_postgresql_and_the_next_apply_sends_nothing(
    loopback: Loopback, tmp_path: Path, pg: str
) -> None:
    box = loopback.sandbox(subset(20))
    config = write_project(box, tmp_path / "project")
    code, out, err = tradepost("apply", "-c", str(config), "--json")
    assert code == 0, err
    sku = _listed(config, "mercadolibre")
    code, out, err = tradepost("sandbox", "order", "-c", str(config), "-m", "mercadolibre", "--sku", sku)
    assert code == 0, err
    for step in (("orders", "pull"), ("orders", "push"), ("apply",)):  # the apply: VTEX's stock, sold
        code, out, err = tradepost(*step, "-c", str(config), *(["-m", "mercadolibre"] if step[1:] else []))
        assert code == 0, err
    sqlite_state = tmp_path / "project" / "state.sqlite"
    with StateStore(sqlite_state) as store, NotificationQueue(store) as queue:
        queue.enqueue(sku, Change.PRICE, "2026-12-01T10:00:00")
        queue.enqueue("2000003", Change.STOCK, "2026-12-01T10:00:01")
        store.record_error("google", "2000003", "gtin: invalid")
    before = contents(str(sqlite_state))
    assert before["listings"] and before["orders"] and before["order_events"] and before["notifications"]

    set_state(config, pg)
    code, out, err = migrate(config, sqlite_state)
    assert code == 0, err
    listings = len(before["listings"])
    assert re.search(rf"\n  listings +{listings} +{listings} +{listings}  ok\n", out), out
    assert "verified: every table's row count" in out
    assert contents(pg.replace(f"env:{ENV}", _postgres.PASSWORD)) == before  # every row, exactly

    code, out, err = tradepost("apply", "-c", str(config), "--json")
    assert code == 0, err
    for summary in json.loads(out)["marketplaces"]:
        assert (summary["applied"], summary["failed"]) == (0, 0), summary
    code, out, err = tradepost("orders", "list", "-c", str(config), "--json")
    assert code == 0, err
    assert [row["state"] for row in json.loads(out)["orders"]] == ["ready"]
    code, out, err = tradepost("sandbox", "order", "-c", str(config), "-m", "mercadolibre", "--sku", sku)
    assert code == 0, err
    code, out, err = tradepost("orders", "pull", "-c", str(config), "-m", "mercadolibre")  # new event ids
    assert code == 0, err


def _listed(config: Path, marketplace: str) -> str:
    """A SKU applied to ``marketplace`` with stock to sell."""
    with StateStore(config.parent / "state.sqlite") as store:
        row = store.db.execute(
            "SELECT sku_id FROM listings WHERE marketplace = ? AND quantity >= 2 ORDER BY sku_id",
            (marketplace,),
        ).fetchone()
    return str(row[0])


# -- refusals: a message, exit 1, nothing written --------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, pg: str) -> tuple[Path, Path]:
    """A project whose `state:` is a fresh PostgreSQL database, and an SQLite state of 30 listings."""
    config = tmp_path / "tradepost.yaml"
    config.write_text("source: {type: file, path: catalog.jsonl}\nmarketplaces: {}\n", encoding="utf-8")
    set_state(config, pg)
    source = tmp_path / "state.sqlite"
    with StateStore(source) as store:
        store.record_applied("google", [listing(n) for n in range(30)])
        store.record_full_pass("google", "apply", applied=30)
    return config, source


def pg_url(config: Path) -> str:
    """The project's PostgreSQL store, its password written in (as tests open it)."""
    return str(YAML().load(config.read_text(encoding="utf-8"))["state"]).replace(
        f"env:{ENV}", _postgres.PASSWORD
    )


def pg_listings(config: Path) -> int:
    with StateStore(pg_url(config)) as store:
        return store.count("google")


def test_a_target_holding_data_is_refused_unless_replaced(project: tuple[Path, Path]) -> None:
    config, source = project
    assert migrate(config, source)[0] == 0
    with StateStore(source) as store:
        store.record_applied("google", [listing(n) for n in range(30, 40)])
    code, out, err = migrate(config, source)
    assert code == 1 and out == ""
    assert "already holds data: listings (30), meta (1); migrate into an empty database" in err
    assert "give --replace to empty these tables first" in err
    assert pg_listings(config) == 30
    code, out, err = migrate(config, source, "--replace", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert (document["replaced"], document["verified"]) == (31, True)
    assert {t["table"]: t["copied"] for t in document["tables"]}["listings"] == 40
    assert pg_listings(config) == 40


def test_a_migration_killed_midway_leaves_the_target_empty_and_runs_again(project: tuple[Path, Path]) -> None:
    config, source = project
    args = ("state", "migrate", "-c", str(config), "--from", str(source))
    killed = tradepost_process(*args, failpoint="migrate:table-copied:#3")  # listings, meta copied
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert pg_listings(config) == 0
    code, _, err = migrate(config, source)
    assert code == 0, err
    assert pg_listings(config) == 30


def test_while_it_copies_nothing_else_opens_the_target_or_writes_the_source(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, source = project
    url = pg_url(config)
    tried: list[str] = []

    def meanwhile(name: str) -> None:  # another process, at the first table copied
        if tried:
            return
        with pytest.raises(StateError, match=r"is busy: another process kept a row locked"):
            StateStore(url, busy_timeout=0.3)
        tried.append("target")
        with (
            StateStore(source, busy_timeout=0.3) as other,
            pytest.raises(StateError, match=r"is busy: another process kept it locked"),
        ):
            other.record_applied("google", [listing(99)])
        tried.append("source")

    monkeypatch.setattr(failpoints, "reach", meanwhile)
    with StateStore(url) as target, open_source(source) as origin:
        migrate_state(origin, target)
    assert tried == ["target", "source"]
    assert pg_listings(config) == 30


def test_a_source_that_is_not_a_readable_tradepost_state_is_refused(project: tuple[Path, Path]) -> None:
    config, source = project
    missing = source.parent / "nowhere.sqlite"
    text = source.parent / "notes.txt"
    text.write_text("not a database at all\n" * 400, encoding="utf-8")
    other = source.parent / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    newer = source.parent / "newer.sqlite"
    with StateStore(newer) as store:
        store.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    damaged = damage(source.parent / "damaged.sqlite")
    expected = {
        missing: f"error: no state store at {missing}: give --from the SQLite file",
        text: f"error: {text} is not a Tradepost state store: it is not an SQLite database",
        other: f"error: {other} is not a Tradepost state store: it has no listings, locks table(s)",
        newer: f"error: state store {newer} is of a newer version ({SCHEMA_VERSION + 1}) than this tradepost",
        damaged: f"error: state store {damaged} is damaged (",
    }
    for path, message in expected.items():
        before = path.read_bytes() if path.exists() else None
        code, out, err = migrate(config, path)
        assert (code, out) == (1, ""), path
        assert err.startswith(message), err
        assert (path.read_bytes() if path.exists() else None) == before  # not migrated, not created
    assert pg_listings(config) == 0


def test_a_value_the_target_cannot_hold_is_named_and_nothing_is_written(project: tuple[Path, Path]) -> None:
    config, source = project
    with StateStore(source) as store:  # SQLite keeps it; Tradepost reads the row as absent
        store.db.execute("UPDATE listings SET quantity = 'many' WHERE sku_id = '000007'")
    code, out, err = migrate(config, source)
    assert (code, out) == (1, ""), out
    assert 'invalid input syntax for type bigint: "many"' in err and "column quantity" in err, err
    assert f"a row of listings in {source} holds a value the target cannot" in err
    assert pg_listings(config) == 0


def damage(path: Path) -> Path:
    """An SQLite state file with a page of its listings overwritten."""
    with StateStore(path) as store:
        store.record_applied("google", [listing(n) for n in range(2000)])
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 5 : page * 6] = b"\xa5" * page
    path.write_bytes(bytes(data))
    return path


def test_a_lock_held_by_a_live_run_is_refused_and_a_stale_one_is_not_copied(
    project: tuple[Path, Path],
) -> None:
    config, source = project
    with StateStore(source) as running:
        running.acquire_lock("google", "tradepost apply")
        code, out, err = migrate(config, source)
        assert code == 1 and "google is locked by tradepost apply (pid" in err, err
        assert "wait for that run to finish" in err
        running.release_lock("google")
        running.db.execute(  # a run killed long ago: its lease ran out
            "INSERT INTO locks VALUES ('amazon', 'old run', 1, 'elsewhere', 1.0, 2.0, 't', '')"
        )
    assert pg_listings(config) == 0
    code, out, err = migrate(config, source)
    assert code == 0, err
    assert "not copied: locks (1 row(s)): a lock belongs to the run that took it" in out
    with StateStore(pg_url(config)) as pg:
        assert pg.lock_holder("amazon") is None


def test_an_unreachable_target_the_projects_own_state_and_a_url_are_refused(
    project: tuple[Path, Path],
) -> None:
    config, source = project
    before = source.read_bytes()
    set_state(config, f"postgresql://{_postgres.USER}:env:{ENV}@127.0.0.1:1/nothere")
    code, out, err = migrate(config, source)
    assert (code, out) == (1, "") and "cannot connect to the PostgreSQL server at 127.0.0.1:1" in err, err
    assert source.read_bytes() == before
    set_state(config, str(source))
    code, _, err = migrate(config, source)
    assert code == 1 and f"state store {source} is the project's own state" in err, err
    code, _, err = migrate(config, "postgresql://someone:hunter2-secret@db.example/state")
    assert code == 1 and "--from takes the SQLite state file to copy from, not a database URL" in err, err
    assert "hunter2-secret" not in err


# -- an old source, a large one --------------------------------------------------------------------

SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE listings (
    marketplace TEXT NOT NULL, sku_id TEXT NOT NULL, product_id TEXT NOT NULL,
    content_hash TEXT NOT NULL, price TEXT NOT NULL, sale_price TEXT, quantity INTEGER NOT NULL,
    remote_id TEXT, applied_at REAL NOT NULL, PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, marketplace TEXT NOT NULL, kind TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL, summary TEXT
);
CREATE TABLE inflight (
    marketplace TEXT NOT NULL, sku_id TEXT NOT NULL, started_at REAL NOT NULL,
    PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
CREATE TABLE locks (
    marketplace TEXT PRIMARY KEY, holder TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    acquired_at REAL NOT NULL
);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO listings VALUES ('google', '1', 'p1', 'h1', '10.00', '9.50', 4, 'R1', 1700000000.5);
INSERT INTO listings VALUES ('google', '2', 'p1', 'h2', '12.00', NULL, 0, NULL, 1700000001.0);
INSERT INTO runs (marketplace, kind, started_at) VALUES ('google', 'apply', 1700000000.0);
INSERT INTO inflight VALUES ('google', '2', 1700000000.0);
INSERT INTO locks VALUES ('google', 'tradepost apply', 1, 'gone-host', 1700000000.0);
"""
"""A state store as the first Tradepost wrote it (schema version 1): locks without leases, an
in-flight journal, no queue and no order tables."""


def test_an_old_schema_source_is_migrated_first_then_copied(project: tuple[Path, Path]) -> None:
    config, _ = project
    old = config.parent / "old.sqlite"
    with sqlite3.connect(old) as connection:
        connection.executescript(SCHEMA_1)
    code, out, err = migrate(config, old, "--json")
    assert code == 0, err
    document = json.loads(out)
    copied = {t["table"]: t["copied"] for t in document["tables"]}
    assert (copied["listings"], copied["runs"], copied["meta"]) == (2, 1, 0)
    assert "inflight" not in copied and document["left_out"] == {"locks": 1}
    url = pg_url(config)
    assert contents(url)["listings"] == contents(str(old))["listings"]
    with StateStore(url) as store:
        assert store.get("google", "1") == AppliedListing(
            "1", "p1", "h1", Decimal("10.00"), Decimal("9.50"), 4, "R1"
        )
        (version,) = store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert int(version) == SCHEMA_VERSION


def test_a_large_state_is_copied_in_bounded_memory(tmp_path: Path, server: _postgres.Server) -> None:
    source = tmp_path / "state.sqlite"
    with StateStore(source) as store:
        for start in range(0, 20_000, 5_000):
            store.record_applied("google", [listing(n) for n in range(start, start + 5_000)])
    with StateStore(source) as store:  # what holding every row at once would cost
        tracemalloc.start()
        held = list(store.db.stream("SELECT * FROM listings"))
        _, whole = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(held) == 20_000
        del held
    url = server.url(server.database())
    with StateStore(url) as target, open_source(source) as origin:
        tracemalloc.start()
        migration = migrate_state(origin, target)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert target.count("google") == 20_000
        assert target.get("google", "019999") == listing(19_999)
    assert {t.table: t.copied for t in migration.tables}["listings"] == 20_000
    assert peak < whole / 4, (peak, whole)
