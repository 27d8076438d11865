"""The state store at its edges: damage, malformed rows, read-only files, a busy file, lock leases, unlock.

Each failure is checked where a user meets it (the exact message and exit code of
`tradepost plan`, `apply`, `orders list/pull`, run as `main()` runs them) and at the
store's API. Leases are checked with a lease of a fraction of a second.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.orders._store import OrderStore
from engine.project._assembly import catalog_records, open_marketplace
from engine.project._config import load_project
from engine.state._store import (
    SCHEMA_VERSION,
    LockedError,
    LockLostError,
    StateError,
    StateStore,
    applied_from,
)
from tests._harness import tradepost as tradepost_in_process
from tests.conftest import ROOT

RULES = ROOT / "rules"
CATALOG_LINES = 12
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
OTHER_HOST = "killed-container-7f3a"

Run = Callable[..., tuple[int, str, str]]


def _write_project(folder: Path) -> Path:
    """A project with a file catalog, google (its 12 SKUs applied) and mercadolibre (for orders)."""
    folder.mkdir(parents=True)
    lines = (ROOT / "examples" / "catalog.jsonl").read_text(encoding="utf-8").splitlines()[:CATALOG_LINES]
    (folder / "catalog.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "secrets").mkdir()
    for name in ("client_id", "client_secret", "refresh_token"):
        (folder / "secrets" / name).write_text("not-a-secret\n", encoding="utf-8")
    config = folder / "tradepost.yaml"
    config.write_text(
        f"""source: {{type: file, path: catalog.jsonl}}
state: state/state.sqlite
marketplaces:
  google:
    rules: {RULES / "google.yaml"}
    base_url: http://127.0.0.1:9
  mercadolibre:
    rules: {RULES / "mercadolibre.yaml"}
    base_url: http://127.0.0.1:9
    credentials:
      client_id: file:secrets/client_id
      client_secret: file:secrets/client_secret
      refresh_token: file:secrets/refresh_token
""",
        encoding="utf-8",
    )
    project = load_project(config)
    run = open_marketplace(project, "google")
    with StateStore(project.state_url) as state:
        OrderStore(state)
        changes = run.planner(state).changes(catalog_records(project, run.trade_policy))
        state.record_applied("google", [applied_from(c.listing) for c in changes if c.listing is not None])
    return config


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_project(tmp_path_factory.mktemp("template") / "project")


@pytest.fixture
def config(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the project, its state store holding the 12 google SKUs as applied."""
    shutil.copytree(template.parent, tmp_path / "project")
    return tmp_path / "project" / "tradepost.yaml"


def _db(config: Path) -> Path:
    return config.parent / "state" / "state.sqlite"


@pytest.fixture
def tradepost() -> Run:
    """Run the CLI in process as the `tradepost` entry point does; (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code, out, err = tradepost_in_process(*args)
        assert "Traceback" not in err and "internal error" not in err
        return code, out, err

    return run


# -- damage ------------------------------------------------------------------------------------


def _damaged(path: Path) -> str:
    return (
        f"state store {path} is damaged (%s); restore it from a backup, or move it aside and run "
        "`tradepost state rebuild -m MARKETPLACE` to read the listings back from each marketplace"
    )


def _damage_table(path: Path, table: str) -> None:
    """Overwrite the first bytes of the table's root page: SQLite finds it only when it reads it."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * 8)


COMMANDS = [
    ("plan", "-m", "google"),
    ("apply", "-m", "google"),
    ("orders", "list"),
    ("orders", "pull", "-m", "mercadolibre"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_one_corrupted_byte_in_the_header_is_a_clear_error(
    config: Path, tradepost: Run, command: tuple[str, ...]
) -> None:
    db = _db(config)
    with db.open("r+b") as file:
        file.write(b"X")  # "SQLite format 3\0" -> "XQLite format 3\0"
    code, _, err = tradepost(*command, "-c", str(config))
    assert (code, err) == (1, "error: " + _damaged(db) % "file is not a database" + "\n")
    with pytest.raises(StateError) as raised:
        StateStore(db)
    assert str(raised.value) == _damaged(db) % "file is not a database"


@pytest.mark.parametrize(
    ("table", "command"),
    [
        ("listings", ("plan", "-m", "google")),
        ("listings", ("apply", "-m", "google")),
        ("orders", ("orders", "list")),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_a_damaged_page_found_by_a_later_query_is_a_clear_error(
    config: Path, tradepost: Run, table: str, command: tuple[str, ...]
) -> None:
    db = _db(config)
    _damage_table(db, table)
    code, _, err = tradepost(*command, "-c", str(config))
    assert (code, err) == (1, "error: " + _damaged(db) % "database disk image is malformed" + "\n")
    with StateStore(db) as state, pytest.raises(StateError) as raised:  # opens: the damage is further in
        if table == "listings":
            state.get_many("google", ["2000001"])
        else:
            list(OrderStore(state).select())
    assert str(raised.value) == _damaged(db) % "database disk image is malformed"


# -- malformed rows ----------------------------------------------------------------------------


def _first_sku(db: Path) -> str:
    with sqlite3.connect(db) as raw:
        return str(raw.execute("SELECT min(sku_id) FROM listings").fetchone()[0])


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("price", "abc", "price is 'abc', not an amount"),
        ("price", "NaN", "price is 'NaN', not an amount"),
        ("quantity", "many", "quantity is 'many', not a whole number"),
        ("sale_price", "-1", "sale_price is '-1', not an amount"),
    ],
)
def test_a_malformed_listing_row_is_planned_as_absent_with_a_warning(
    config: Path, tradepost: Run, column: str, value: str, why: str
) -> None:
    db = _db(config)
    sku = _first_sku(db)
    with sqlite3.connect(db) as raw:
        raw.execute(f"UPDATE listings SET {column} = ? WHERE sku_id = ?", (value, sku))
    code, out, err = tradepost("plan", "-m", "google", "-c", str(config))
    assert code == 0
    assert err == (
        f"WARNING tradepost.state: state store {db}: google SKU {sku}: {why}; planned as if absent: a create "
        "looks the seller SKU up on the marketplace first, so its listing is adopted, not doubled\n"
    )
    assert (
        f"google Plan: 1 to create, 0 to update, 0 to delete, 0 invalid ({CATALOG_LINES - 1} unchanged" in out
    )


def test_a_listing_row_with_a_null_quantity_is_absent_until_applied_again(config: Path) -> None:
    db = _db(config)
    sku = _first_sku(db)
    with sqlite3.connect(db) as raw:  # a file edited by hand: the NOT NULL constraint is gone
        columns = ", ".join(row[1] for row in raw.execute("PRAGMA table_info(listings)"))
        raw.executescript(
            "ALTER TABLE listings RENAME TO old;"
            "CREATE TABLE listings (marketplace TEXT, sku_id TEXT, product_id TEXT, content_hash TEXT,"
            " price TEXT, sale_price TEXT, quantity INTEGER, remote_id TEXT, applied_at REAL,"
            " source_hash TEXT,"
            " PRIMARY KEY (marketplace, sku_id)) WITHOUT ROWID;"
            f"INSERT INTO listings SELECT {columns} FROM old; DROP TABLE old;"
        )
        raw.execute("UPDATE listings SET quantity = NULL WHERE sku_id = ?", (sku,))
    with StateStore(db) as state:
        assert sku not in state.get_many("google", [sku, "2000003"])
        assert state.get("google", "2000003") is not None
        state.begin_seen()  # the SKU left the catalog: it is not planned for a delete either
        assert sku not in {row.sku_id for row in state.unseen("google")}
        assert len(list(state.unseen("google"))) == state.count("google") - 1
        # Applying it again (adopted or sent) writes a good row over the bad one.
        project = load_project(config)
        run = open_marketplace(project, "google")
        listing = next(
            c.listing for c in run.planner(state).changes(catalog_records(project)) if c.sku_id == sku
        )
        assert listing is not None
        state.record_applied("google", [applied_from(listing, "online:pt:BR:" + sku)])
        row = state.get("google", sku)
    assert row is not None and row.quantity == listing.quantity


def _insert_order(db: Path, order_json: str, decision: str = '{"decision": "approve"}') -> None:
    with sqlite3.connect(db) as raw:
        raw.execute(
            "INSERT INTO orders (marketplace, order_id, state, decision, order_json, marketplace_status, "
            "payment_status, received_at, updated_at) "
            "VALUES ('mercadolibre', '2000009', 'held', ?, ?, 'paid', 'approved', 0, 0)",
            (decision, order_json),
        )


@pytest.mark.parametrize(
    ("order_json", "decision", "why"),
    [
        ("garbage", '{"decision": "hold"}', "order_json: Invalid JSON: expected value at line 1 column 1"),
        ("{}", "not json", "decision: Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_a_malformed_order_row_is_a_clear_error(
    config: Path, tradepost: Run, order_json: str, decision: str, why: str
) -> None:
    db = _db(config)
    _insert_order(db, order_json, decision)
    expected = (
        f"state store {db}: mercadolibre order 2000009 cannot be read ({why}); "
        "restore the state store from a backup. Tradepost does not guess an order's state: "
        "it could place or cancel it twice"
    )
    code, _, err = tradepost("orders", "list", "-c", str(config))
    assert (code, err) == (1, f"error: {expected}\n")
    with StateStore(db) as state, pytest.raises(StateError) as raised:
        OrderStore(state).get("mercadolibre", "2000009")
    assert str(raised.value) == expected


# -- read-only file and folder -----------------------------------------------------------------


def _unprivileged() -> list[str]:
    """A command prefix under which the file modes hold: root ignores them unless it drops the capability."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only file cannot be refused to root")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_unprivileged(), sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def _cannot_write(db: Path) -> str:
    return (
        f"state store {db} cannot be written (attempt to write a readonly database); make the file and its "
        "folder writable by the user running tradepost (SQLite also writes -wal and -shm files next to it)"
    )


def test_a_read_only_state_file_is_a_clear_error_to_every_command_that_writes(config: Path) -> None:
    db = _db(config)
    db.chmod(0o444)
    try:
        readers: list[tuple[str, ...]] = [("plan", "-m", "google"), ("orders", "list")]
        for command in readers:
            result = _cli(*command, "-c", str(config))
            assert result.returncode == 0, result.stderr  # they only read
        writers: list[tuple[str, ...]] = [("apply", "-m", "google"), ("orders", "pull", "-m", "mercadolibre")]
        for command in writers:
            result = _cli(*command, "-c", str(config))
            assert (result.returncode, result.stderr) == (1, f"error: {_cannot_write(db)}\n")
    finally:
        db.chmod(0o644)


def test_a_read_only_state_folder_is_a_clear_error(config: Path) -> None:
    db = _db(config)
    db.parent.chmod(0o555)
    try:
        for command in (("plan", "-m", "google"), ("orders", "pull", "-m", "mercadolibre")):
            result = _cli(*command, "-c", str(config))
            assert (result.returncode, result.stderr) == (1, f"error: {_cannot_write(db)}\n")
        api = subprocess.run(
            [
                *_unprivileged(),
                sys.executable,
                "-c",
                "import sys\nfrom engine.state._store import StateError, StateStore\n"
                "try:\n    StateStore(sys.argv[1])\nexcept StateError as exc:\n    print(exc)",
                str(db),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=60,
        )
        assert api.stdout == _cannot_write(db) + "\n", api.stderr
    finally:
        db.parent.chmod(0o755)


# -- another writer ----------------------------------------------------------------------------


@pytest.fixture
def writer(config: Path) -> Iterator[sqlite3.Connection]:
    """Another process's long write transaction (a backup tool, a shell) on the state file."""
    raw = sqlite3.connect(_db(config), isolation_level=None)
    raw.execute("BEGIN EXCLUSIVE")
    yield raw
    raw.execute("ROLLBACK")
    raw.close()


def _busy(db: Path, seconds: str) -> str:
    return (
        f"state store {db} is busy: another process kept it locked for more than {seconds} s (database is "
        "locked); wait for that run to finish and try again (TRADEPOST_STATE_TIMEOUT sets the wait)"
    )


@pytest.mark.parametrize(
    "command", [("apply", "-m", "google"), ("orders", "pull", "-m", "mercadolibre")], ids=" ".join
)
def test_a_writer_holding_the_file_past_the_busy_timeout_is_a_clear_error(
    config: Path,
    tradepost: Run,
    writer: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    monkeypatch.setenv("TRADEPOST_STATE_TIMEOUT", "0.3")
    started = time.monotonic()
    code, _, err = tradepost(*command, "-c", str(config))
    assert (code, err) == (1, f"error: {_busy(_db(config), '0.3')}\n")
    assert time.monotonic() - started < 10


def test_a_plan_reads_while_another_process_writes(config: Path, tradepost: Run, writer: object) -> None:
    code, out, _ = tradepost("plan", "-m", "google", "-c", str(config))
    assert code == 0 and "0 to create" in out


def test_the_busy_timeout_is_30_seconds_unless_configured(
    config: Path, writer: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StateStore(_db(config)) as state:
        assert state.busy_timeout == 30
    with StateStore(_db(config), busy_timeout=0.2) as state, pytest.raises(StateError) as raised:
        state.acquire_lock("google", "test")
    assert str(raised.value) == _busy(_db(config), "0.2")
    monkeypatch.setenv("TRADEPOST_STATE_TIMEOUT", "soon")
    with pytest.raises(StateError) as raised:
        StateStore(_db(config))
    assert str(raised.value) == "TRADEPOST_STATE_TIMEOUT must be a positive number of seconds, not 'soon'"


# -- leases ------------------------------------------------------------------------------------


def _lock_row(db: Path, host: str, pid: int, acquired_at: float, expires_at: float) -> None:
    with sqlite3.connect(db) as raw:
        raw.execute(
            "INSERT OR REPLACE INTO locks VALUES ('google', 'tradepost apply', ?, ?, ?, ?, 'token', '')",
            (pid, host, acquired_at, expires_at),
        )


def test_a_lock_left_on_another_host_is_taken_over_once_its_lease_ran_out(
    config: Path, tradepost: Run
) -> None:
    db = _db(config)
    _lock_row(db, OTHER_HOST, 4242, time.time() - 7200, time.time() - 7140)  # a killed container, 2 h ago
    code, _, err = tradepost("apply", "-m", "google", "-c", str(config))
    assert code == 0, err
    assert re.fullmatch(
        f"WARNING tradepost.state: took over the lock on google held by tradepost apply \\(pid 4242 on "
        f"{OTHER_HOST}\\) since {WHEN}: its lease expired at {WHEN}\n"
        "google Apply: 0 applied, 0 failed, 0 already applied .*\n",
        err,
    )
    with StateStore(db) as state:
        assert state.lock_holder("google") is None  # the run released its own lock


def test_a_lock_whose_lease_runs_says_who_holds_it_since_when_and_until_when(
    config: Path, tradepost: Run
) -> None:
    db = _db(config)
    now = time.time()
    _lock_row(db, OTHER_HOST, 4242, now - 30, now + 30)
    code, _, err = tradepost("apply", "-m", "google", "-c", str(config))
    since, until = (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) for t in (now - 30, now + 30))
    assert (code, err) == (
        1,
        f"error: google is locked by tradepost apply (pid 4242 on {OTHER_HOST}) since {since}; its lease "
        f"expires at {until} unless that run renews it; wait for it to finish, or if it is gone run "
        "`tradepost unlock -m google`\n",
    )


def test_a_holder_that_renews_is_never_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with StateStore(path, lease=0.3) as first, StateStore(path, lease=0.3) as second:
        first.acquire_lock("google", "first run")
        time.sleep(1.2)  # four leases
        with pytest.raises(LockedError, match=r"^google is locked by first run"):
            second.acquire_lock("google", "second run")
        holder = first.lock_holder("google")
        assert holder is not None and holder.expires_at > time.time()
        assert first._leases["google"].renewals >= 3
        first.release_lock("google")
        second.acquire_lock("google", "second run")  # released: free at once
        second.release_lock("google")


def test_a_holder_that_stopped_renewing_is_taken_over_when_its_lease_runs_out(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with StateStore(path, lease=0.3) as first, StateStore(path, lease=0.3) as second:
        first.acquire_lock("google", "first run")
        first._leases["google"].stop()  # hung, or its host lost: its process is alive but renews nothing
        with pytest.raises(LockedError):
            second.acquire_lock("google", "second run")
        time.sleep(0.35)
        second.acquire_lock("google", "second run")
        holder = second.lock_holder("google")
        assert holder is not None and holder.holder == "second run"
        second.release_lock("google")


def test_a_lock_of_a_process_gone_from_this_host_is_taken_over_at_once(config: Path) -> None:
    db = _db(config)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    with StateStore(db) as state:
        namespace = os.readlink("/proc/self/ns/pid") if os.path.exists("/proc/self/ns/pid") else ""
        with sqlite3.connect(db) as raw:
            raw.execute(
                "INSERT INTO locks VALUES ('google', 'tradepost apply', ?, ?, ?, ?, 'their-token', ?)",
                (int(gone.stdout), os.uname().nodename, time.time(), time.time() + 3600, namespace),
            )
        state.acquire_lock("google", "next run")  # no wait for the hour-long lease
        state.release_lock("google")


def test_a_run_whose_lock_was_released_by_hand_stops_at_its_next_statement(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with StateStore(path, lease=0.3) as run, StateStore(path) as other:
        run.acquire_lock("google", "tradepost apply")
        assert other.break_lock("google") is not None
        deadline = time.monotonic() + 3
        while run._leases["google"].lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LockLostError) as raised:
            run.get("google", "1")
        run.release_lock("google")  # leaving the run still works, and deletes nothing of another's
    assert str(raised.value) == (
        "this run lost its lock on google: it was released by hand (`tradepost unlock`); "
        f"the run stopped; run it again (state store {path})"
    )


def test_a_lease_renews_while_the_main_thread_is_busy(tmp_path: Path) -> None:
    """Planning a big catalog keeps the main thread busy without a statement: renewal is a thread's job."""
    path = tmp_path / "state.sqlite"
    with StateStore(path, lease=0.3) as run:
        run.acquire_lock("google", "tradepost apply")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # a CPU-bound stretch
            sum(range(10_000))
        holder = run.lock_holder("google")
        assert holder is not None and holder.expires_at > time.time()
        run.release_lock("google")


# -- schema version ----------------------------------------------------------------------------


def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as raw:  # a dump of a store written by the code before leases
        raw.executescript((ROOT / "tests" / "fixtures" / "state_v1.sql").read_text(encoding="utf-8"))
    with StateStore(path, lease=60) as state:
        holder = state.lock_holder("google")
        assert holder is not None and (holder.host, holder.pid) == ("old-container", 4242)
        assert holder.expires_at == holder.acquired_at + 60  # one lease from when it was taken
        row = state.get("google", "2000002")
        assert row is not None and (str(row.price), str(row.sale_price), row.quantity) == (
            "89.90",
            "79.90",
            0,
        )
        assert state.pending("google") == {"2000003": "tok"}
        state.acquire_lock("google", "tradepost apply")  # taken in January: long expired
        state.release_lock("google")
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
    with StateStore(path):  # and opens again as it is
        pass


def test_a_file_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    StateStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StateError) as raised:
        StateStore(path)
    assert str(raised.value) == f"state store {path} is of a newer version (99); upgrade tradepost"


# -- unlock ------------------------------------------------------------------------------------


def test_unlock_releases_a_lock_by_hand_and_says_who_held_it(config: Path, tradepost: Run) -> None:
    db = _db(config)
    now = time.time()
    _lock_row(db, OTHER_HOST, 4242, now - 30, now + 3600)
    code, out, _ = tradepost("unlock", "-m", "google", "-c", str(config))
    since, until = (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) for t in (now - 30, now + 3600))
    assert (code, out) == (
        0,
        f"released the lock on google, held by tradepost apply (pid 4242 on {OTHER_HOST}) since {since}; "
        f"its lease expires at {until} (still valid: if that run is alive, it stops)\n",
    )
    assert tradepost("apply", "-m", "google", "-c", str(config))[0] == 0
    code, out, _ = tradepost("unlock", "-m", "google", "-c", str(config))
    assert (code, out) == (0, "google is not locked; nothing to release\n")


def test_unlock_orders_releases_the_lock_of_order_runs(config: Path, tradepost: Run) -> None:
    with StateStore(_db(config)) as state:
        state.db.execute(
            "INSERT INTO locks VALUES (?, 'tradepost orders pull', 4242, ?, 0, 1, '', '')",
            ("orders:mercadolibre", OTHER_HOST),
        )
    code, out, _ = tradepost("unlock", "-m", "mercadolibre", "--orders", "-c", str(config))
    assert code == 0 and out.startswith(
        "released the lock on orders:mercadolibre, held by tradepost orders pull"
    )
    assert out.endswith(" (expired)\n")


def test_unlock_of_an_unknown_marketplace_is_an_error(config: Path, tradepost: Run) -> None:
    code, _, err = tradepost("unlock", "-m", "nope", "-c", str(config))
    assert (code, err) == (
        1,
        f"error: marketplace 'nope' is not in {config} (configured: google, mercadolibre)\n",
    )


def test_an_apply_that_lost_its_lock_stops_before_sending_anything(tmp_path: Path) -> None:
    """The executor does not record a state failure as one SKU's: the run stops, nothing more is sent."""
    import asyncio

    import httpx

    import engine
    from engine.connectors import Credentials, connector_class
    from engine.sync._executor import Executor
    from engine.sync._plan import Planner
    from engine.sync._planfile import change_record
    from engine.sync._source import FileSource
    from marketplaces.mercadolibre.standin import (
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        SANDBOX_REFRESH_TOKEN,
        MercadoLibreStandin,
    )

    compiled = engine.compile_rules(RULES / "mercadolibre.yaml")
    connector = connector_class("mercadolibre")({})
    records = [
        change_record(c, connector)
        for c in Planner(compiled, connector).changes(FileSource(ROOT / "examples" / "catalog.jsonl"))
        if c.op == "create" and not c.family
    ][:5]
    standin = MercadoLibreStandin()
    credentials = Credentials(
        {
            "client_id": SANDBOX_CLIENT_ID,
            "client_secret": SANDBOX_CLIENT_SECRET,
            "refresh_token": SANDBOX_REFRESH_TOKEN,
        }
    )

    async def apply(state: StateStore) -> object:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://ml.test") as client:
            return await Executor(connector, client, state, credentials).apply(records)

    path = tmp_path / "state.sqlite"
    with StateStore(path, lease=0.3) as state, StateStore(path) as other:
        state.acquire_lock("mercadolibre", "tradepost apply")
        other.break_lock("mercadolibre")
        deadline = time.monotonic() + 3
        while state._leases["mercadolibre"].lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LockLostError, match="lost its lock on mercadolibre"):
            asyncio.run(apply(state))
        state.release_lock("mercadolibre")
    assert standin.items == {}
    with StateStore(path) as state:
        assert state.errors("mercadolibre") == {}  # no SKU was blamed


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            13,
            "database or disk is full",
            "cannot grow: the disk is full (database or disk is full); free space",
        ),
        (10, "disk I/O error", "could not be read or written (disk I/O error); check the disk and run again"),
        (1, "no such table: listings", "state store {path}: no such table: listings"),
    ],
)
def test_other_sqlite_errors_name_the_file(tmp_path: Path, code: int, message: str, expected: str) -> None:
    from engine.state._db import state_error

    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    path = tmp_path / "state.sqlite"
    text = str(state_error(path, error))
    assert text.startswith(f"state store {path}") and expected.format(path=path) in text


def test_a_folder_given_as_the_state_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StateError) as raised:
        StateStore(tmp_path)
    assert (
        str(raised.value) == f"state store {tmp_path} is a folder; set `state:` to a file path in the config"
    )


def test_a_run_whose_lock_another_run_took_says_who_has_it(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with StateStore(path, lease=0.3) as run, StateStore(path, lease=60) as other:
        run.acquire_lock("google", "tradepost apply")
        other.break_lock("google")
        other.acquire_lock("google", "second apply")
        deadline = time.monotonic() + 3
        while run._leases["google"].lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LockLostError) as raised:
            run.record_error("google", "1", "x")
        run.release_lock("google")
        holder = other.lock_holder("google")
        assert holder is not None and holder.holder == "second apply"  # the first run deleted nothing
        other.release_lock("google")
    assert re.fullmatch(
        f"this run lost its lock on google: it is now held by second apply \\(pid {os.getpid()} on "
        f"{re.escape(os.uname().nodename)}\\) since {WHEN}; its lease expires at {WHEN}; the run stopped; "
        f"run it again \\(state store {re.escape(str(path))}\\)",
        str(raised.value),
    )


def test_a_run_paused_past_its_lease_stops_at_its_next_statement(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with StateStore(path, lease=0.3) as run:
        run.acquire_lock("google", "tradepost apply")
        run._leases["google"].stop()  # SIGSTOP, a laptop lid: nothing renews
        run.get("google", "1")  # within the lease, the run goes on
        time.sleep(0.35)
        with pytest.raises(LockLostError) as raised:
            run.get("google", "1")
        run.release_lock("google")
    assert re.fullmatch(
        f"this run's lease on google ran out at {WHEN} without being renewed "
        "\\(the process was paused or the state store busy\\); the run stopped; run it again "
        "\\(state store .*\\)",
        str(raised.value),
    )
