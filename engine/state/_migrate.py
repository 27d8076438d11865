"""Move a state store into another database whole: ``tradepost state migrate``.

The contract. :func:`open_source` opens an SQLite state file only once it is known to be a
Tradepost state store this Tradepost can read: a file (never created), an SQLite database, with
Tradepost's tables and a schema version no newer than :data:`~engine.state._store.SCHEMA_VERSION`,
and undamaged (SQLite's ``quick_check``); only then is it migrated to the current version, as any
run would. :func:`migrate_state` copies every table of the source into the target (the project's
store, normally PostgreSQL) in one target transaction, columns by name (those both sides have),
rows streamed (``COPY`` on PostgreSQL), so memory stays bounded by a batch whatever the size, and
compares the row counts of every table before it commits: the target holds the whole source or
nothing of it.

While it copies, nothing else writes either store: the source's write lock is held (a run or
``tradepost serve`` writing it waits, then stops as busy) and the target's schema lock (a process
opening it waits). A source or target lock still held by a live run refuses the migration: that
run's writes would be lost. Locks are never copied: a lock belongs to the run that took it, in the
store it took it in. A target that already holds data (anything beyond its schema version) is
refused, unless ``replace``: then its Tradepost tables are emptied in the same transaction (a
rehearsal migrated earlier, migrated again at the cut-over). Tables of the source that the target
does not have are reported, not copied: the caller makes every table of this Tradepost (the order
tables too) on both stores first.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import failpoints
from engine.state._db import LOCK_COLUMNS, StateError, pid_namespace, read_holder, state_error
from engine.state._store import SCHEMA_VERSION, StateStore

NOT_COPIED = frozenset({"locks"})
"""Tables never copied: a lock belongs to the run that took it, in the store it took it in."""
_OWN_META = " WHERE key <> 'schema_version'"
"""``meta`` rows copied: all but the schema version, which each store keeps for itself."""
_REQUIRED = frozenset({"meta", "listings", "locks"})
"""Tables every Tradepost state store has, since schema version 1."""


@dataclass(frozen=True)
class TableCopy:
    """One table copied: its rows in the source, rows written, rows the target holds after."""

    table: str
    source_rows: int
    copied: int
    target_rows: int
    columns_left_out: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.source_rows == self.copied == self.target_rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "source_rows": self.source_rows,
            "copied": self.copied,
            "target_rows": self.target_rows,
            "verified": self.verified,
            "columns_left_out": list(self.columns_left_out),
        }


@dataclass(frozen=True)
class Migration:
    """What :func:`migrate_state` copied, where from and to (stores as messages name them)."""

    source: str
    target: str
    tables: tuple[TableCopy, ...]
    left_out: dict[str, int]
    """Tables of the source not copied, and their rows."""
    replaced: int
    """Rows the target held before, emptied with ``replace``."""
    seconds: float

    @property
    def rows(self) -> int:
        return sum(table.copied for table in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "replaced": self.replaced,
            "verified": all(table.verified for table in self.tables),
            "tables": [table.to_dict() for table in self.tables],
            "left_out": self.left_out,
        }

    def line(self) -> str:
        replaced = f", after emptying {self.replaced} row(s) it held" if self.replaced else ""
        return (
            f"copied {self.rows} row(s) of {len(self.tables)} tables from {self.source} to {self.target} "
            f"in {self.seconds:.1f} s{replaced}"
        )

    def details(self) -> list[str]:
        width = max((len(table.table) for table in self.tables), default=5)
        lines = [f"{'table':<{width}}  {'source':>9}  {'copied':>9}  {'target':>9}"]
        for table in self.tables:
            lines.append(
                f"{table.table:<{width}}  {table.source_rows:>9}  {table.copied:>9}  {table.target_rows:>9}"
                f"  {'ok' if table.verified else 'MISMATCH'}"
            )
            lines += [
                f"  column {column} not copied: the target has none" for column in table.columns_left_out
            ]
        lines += [
            f"not copied: {table} ({rows} row(s)): {_why_left_out(table)}"
            for table, rows in self.left_out.items()
        ]
        lines.append(f"verified: every table's row count in {self.target} equals the source's")
        return lines


def _why_left_out(table: str) -> str:
    if table in NOT_COPIED:
        return "a lock belongs to the run that took it, in the store it took it in"
    return "not a table of this Tradepost's state store"


def open_source(source: str | Path) -> StateStore:
    """The SQLite state store at ``source`` (a path or ``sqlite:///path``), migrated to this
    Tradepost's schema version, once it is known to be one: refused (a :class:`StateError` saying
    why) when it is a URL of another database, missing, not an SQLite database, not a Tradepost
    state store, of a newer version, or damaged."""
    text = str(source)
    if "://" in text and not text.startswith("sqlite:///"):
        raise StateError(  # the URL is not repeated: it may hold a password
            "--from takes the SQLite state file to copy from, not a database URL (a PostgreSQL "
            "store is copied with pg_dump and pg_restore)"
        )
    path = Path(text.removeprefix("sqlite:///"))
    if not path.is_file():
        raise StateError(
            f"no state store at {path}: give --from the SQLite file that `state:` named before "
            "(the project's state.sqlite by default)"
        )
    version = _inspect(path)
    if version > SCHEMA_VERSION:
        raise StateError(
            f"state store {path} is of a newer version ({version}) than this tradepost reads "
            f"({SCHEMA_VERSION}); migrate it with the tradepost that wrote it, or upgrade tradepost"
        )
    return StateStore(path)


def _inspect(path: Path) -> int:
    """The schema version of the SQLite state store at ``path``, read without writing to it."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise state_error(path, exc) from None
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = sorted(_REQUIRED - tables)
        if missing:
            raise StateError(
                f"{path} is not a Tradepost state store: it has no {', '.join(missing)} table(s); "
                "give --from the SQLite file that `state:` named before"
            )
        problems = [str(row[0]) for row in connection.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise StateError(
                f"state store {path} is damaged ({'; '.join(problems)}); restore it from a backup and "
                "migrate that, or start the new store with `tradepost state rebuild -m MARKETPLACE`"
            )
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error as exc:
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code == 26:  # SQLITE_NOTADB
            raise StateError(f"{path} is not a Tradepost state store: it is not an SQLite database") from None
        raise state_error(path, exc) from None
    finally:
        connection.close()
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise StateError(
            f"{path} is not a Tradepost state store: its schema version is "
            f"{'missing' if row is None else repr(row[0])}"
        ) from None


def migrate_state(source: StateStore, target: StateStore, *, replace: bool = False) -> Migration:
    """Copy every table of ``source`` into ``target`` in one transaction and verify the row counts
    (see the module's contract). Raises :class:`StateError`, the target untouched, when it cannot."""
    started = time.monotonic()
    if source.path is not None and target.path is not None and source.path.resolve() == target.path.resolve():
        raise StateError(
            f"state store {source.url} is the project's own state: set `state:` to the PostgreSQL "
            "database to move it into, and give --from the SQLite file"
        )
    plan, left_out = _plan(source, target)
    with source.db.transaction(write=True), target.db.transaction(write=True):
        target.dialect.lock_schema(target.db)
        for store in (source, target):
            _refuse_live_lock(store)
        replaced = _make_room(target, list(plan), replace)
        copies = tuple(_copy(source, target, table, columns) for table, columns in plan.items())
        left_out.update({table: _count(source, table) for table in NOT_COPIED})
        wrong = [copy.table for copy in copies if not copy.verified]
        if wrong:
            raise StateError(
                f"state store {target.url}: the row counts of {', '.join(wrong)} differ from the "
                f"source's after the copy; nothing was written. Run it again; if it persists, report a bug"
            )
    left_out = {table: rows for table, rows in left_out.items() if rows}
    return Migration(source.url, target.url, copies, left_out, replaced, time.monotonic() - started)


def _plan(source: StateStore, target: StateStore) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Each table to copy and its columns (those both stores have); the source's tables left out."""
    theirs = target.dialect.tables(target.db)
    plan: dict[str, list[str]] = {}
    left_out: dict[str, int] = {}
    for table in sorted(source.dialect.tables(source.db) - NOT_COPIED):
        if table not in theirs:
            left_out[table] = _count(source, table)
            continue
        plan[table] = sorted(
            source.dialect.columns(source.db, table) & target.dialect.columns(target.db, table)
        )
    return plan, left_out


def _refuse_live_lock(store: StateStore) -> None:
    """Refuse while a run holds a lock on ``store`` (its writes would be lost); stale locks do not count."""
    now, host, namespace = time.time(), socket.gethostname(), pid_namespace()
    for name, *row in store.db.execute(f"SELECT marketplace, {LOCK_COLUMNS} FROM locks ORDER BY marketplace"):
        holder = read_holder(str(name), row)
        if holder.taken_over(now, host, namespace) is None:
            raise StateError(
                f"state store {store.url}: {name} is locked by {holder.describe()}; wait for that run to "
                "finish (and stop the schedules and `tradepost serve` writing this store), then migrate"
            )


def _make_room(target: StateStore, tables: list[str], replace: bool) -> int:
    """Rows the target holds in ``tables``: none, or (``replace``) deleted; refused otherwise."""
    held = {table: _count(target, table) for table in tables}
    held = {table: rows for table, rows in held.items() if rows}
    if held and not replace:
        rows = ", ".join(f"{table} ({rows})" for table, rows in held.items())
        raise StateError(
            f"state store {target.url} already holds data: {rows}; migrate into an empty database, or "
            "give --replace to empty these tables first (in the same transaction as the copy)"
        )
    for table in held:
        target.db.execute(f"DELETE FROM {table}{_OWN_META if table == 'meta' else ''}")
    return sum(held.values())


def _copy(source: StateStore, target: StateStore, table: str, columns: list[str]) -> TableCopy:
    where = _OWN_META if table == "meta" else ""
    rows = source.db.stream(f"SELECT {', '.join(columns)} FROM {table}{where}")
    try:
        copied = target.db.load(table, columns, rows)
    except StateError as exc:
        if not str(getattr(exc.__cause__, "sqlstate", None) or "").startswith("22"):  # not a bad value
            raise
        raise StateError(
            f"{exc}; a row of {table} in {source.url} holds a value the target cannot (edited by hand, or "
            "damaged): correct or delete that row in the SQLite file, then migrate again; nothing was written"
        ) from None
    failpoints.reach("migrate:table-copied")  # a kill here, at any table, leaves the target as it was
    left_out = source.dialect.columns(source.db, table) - set(columns)
    return TableCopy(table, _count(source, table), copied, _count(target, table), tuple(sorted(left_out)))


def _count(store: StateStore, table: str) -> int:
    where = _OWN_META if table == "meta" else ""
    (rows,) = store.db.execute(f"SELECT count(*) FROM {table}{where}").fetchone()
    return int(rows)
