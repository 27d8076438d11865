"""The state store's connection: one interface over two databases, errors translated, lock leases.

Every statement of the state store (listings, orders, the queue) goes through :class:`Db`, and
everything the two databases do differently sits in a :class:`Dialect`: how to connect, how a
write transaction starts, how a schema script is run, and which error means what. SQL is written
once, in the subset both speak (``?`` placeholders, ``INSERT ... ON CONFLICT``); the PostgreSQL
dialect (:mod:`engine.state._pg`) rewrites placeholders and column types. A database error leaves
:class:`Db` as a :class:`StateError` naming the store and what to do. For SQLite, by result code:
a damaged file (restore a backup, or ``tradepost state rebuild``), a file or folder that cannot
be written (fix permissions), another writer holding the file past the busy timeout (wait).

A lock is a row with a lease: :class:`Lease` renews its expiry every third of
the lease, on a connection of its own, from a thread, so a run busy planning a
large catalog keeps its lock; when the row is gone or another run's, the lock is
lost and :class:`Db` stops the run at its next statement.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from engine._diagnostics import TradepostError

BUSY_TIMEOUT = 30.0
"""Seconds a statement waits for another writer before the run stops (``TRADEPOST_STATE_TIMEOUT``)."""
LEASE = 60.0
"""Seconds a lock stays valid without renewal (``TRADEPOST_LOCK_LEASE``); renewed every third."""

log = logging.getLogger("tradepost.state")


class StateError(TradepostError):
    """The state store cannot be opened, read or written; the message says what to do."""


class LockLostError(StateError):
    """This run's lock was taken over (its lease ran out) or released by hand: it must stop."""


# SQLite's primary result codes (https://www.sqlite.org/rescode.html) that a user can act on.
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26


def state_error(path: Path, exc: sqlite3.Error, busy_timeout: float = BUSY_TIMEOUT) -> StateError:
    """The :class:`StateError` for a ``sqlite3`` error on the store at ``path``: what happened, what to do."""
    detail = str(exc) or type(exc).__name__
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = detail.lower()
    if code in (_CORRUPT, _NOTADB) or "malformed" in text or "not a database" in text:
        return StateError(
            f"state store {path} is damaged ({detail}); restore it from a backup, or move it aside and run "
            "`tradepost state rebuild -m MARKETPLACE` to read the listings back from each marketplace"
        )
    if code in (_READONLY, _CANTOPEN, _PERM) or "readonly" in text or "unable to open" in text:
        return StateError(
            f"state store {path} cannot be written ({detail}); make the file and its folder writable by "
            "the user running tradepost (SQLite also writes -wal and -shm files next to it)"
        )
    if code in (_BUSY, _LOCKED) or "database is locked" in text:
        return StateError(
            f"state store {path} is busy: another process kept it locked for more than {busy_timeout:g} s "
            f"({detail}); wait for that run to finish and try again (TRADEPOST_STATE_TIMEOUT sets the wait)"
        )
    if code == _FULL:
        return StateError(
            f"state store {path} cannot grow: the disk is full ({detail}); free space and run again"
        )
    if code == _IOERR:
        return StateError(
            f"state store {path} could not be read or written ({detail}); check the disk and run again"
        )
    return StateError(f"state store {path}: {detail}")


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable ``name``."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400 * 365:
        raise StateError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


BATCH = 1000
"""Rows fetched at a time when a query's rows are iterated."""
RETRIES = 5
"""Times a transaction the database gave up on (a serialization failure, a deadlock) is run again."""


class ConflictError(StateError):
    """The database rolled a transaction back to keep concurrent ones consistent: running it again is safe."""


class Upsert(NamedTuple):
    """Where :meth:`Db.upsert` writes: a table, the columns each row gives, the key a row replaces by."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


class Dialect(ABC):
    """What differs between the databases under one store: the SQLite file here, PostgreSQL in
    :mod:`engine.state._pg`. ``where`` names the store in every message (a path, or a URL without
    its password). SQL reaches :meth:`sql` spelled as SQLite reads it."""

    where: str
    busy_timeout: float
    errors: tuple[type[Exception], ...]
    for_update = ""
    """What a ``SELECT`` adds to lock the rows it read until the transaction ends (none: SQLite
    locks the whole file from ``BEGIN IMMEDIATE`` on)."""
    schema_in_transaction = False
    """Tables are created and migrated in one transaction that other processes wait for."""

    @abstractmethod
    def connect(self, *, durable: bool = False) -> Any:
        """A new connection in autocommit mode (transactions begin explicitly); ``durable``: every
        commit is on disk before it returns."""

    @abstractmethod
    def translate(self, exc: Exception) -> StateError:
        """The :class:`StateError` for one of :attr:`errors`: what happened, what to do."""

    def sql(self, text: str) -> str:
        """A statement in this database's spelling."""
        return text

    @abstractmethod
    def begin(self, write: bool) -> str:
        """The statement that starts a transaction (``write``: one that reads before it writes)."""

    @abstractmethod
    def one_of(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A column's condition "is one of ``values``" and its parameters."""

    @abstractmethod
    def in_transaction(self, connection: Any) -> bool: ...

    @abstractmethod
    def executescript(self, connection: Any, script: str) -> None:
        """Run a schema script written for SQLite."""

    @abstractmethod
    def stream(self, connection: Any, sql: str, params: Sequence[Any]) -> Any:
        """A cursor whose rows are fetched as they are read, not all at once."""

    @abstractmethod
    def columns(self, db: Db, table: str) -> set[str]:
        """The names of a table's columns (a migration adds the missing ones)."""

    @abstractmethod
    def tables(self, db: Db) -> set[str]:
        """The names of the store's tables (``tradepost state migrate`` copies them)."""

    def load(
        self, connection: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Insert ``rows`` (values of ``columns``, in that order) into ``table`` as they come: a bulk
        copy whose memory stays bounded however many rows there are."""
        connection.cursor().executemany(_insert(table, columns), rows)

    def upsert(self, connection: Any, into: Upsert, rows: list[Sequence[Any]]) -> None:
        """Insert ``rows`` into ``into.table``, a row whose key is there already replacing its other
        columns; of rows with the same key in ``rows``, the last."""
        connection.cursor().executemany(replace_into(*into), rows)

    @abstractmethod
    def lock_schema(self, db: Db) -> None:
        """Keep other processes from creating or migrating the tables until this transaction ends."""

    @abstractmethod
    def set_wait(self, db: Db, seconds: float) -> None:
        """How long a statement waits for another writer before it fails as busy."""

    def indexed_by(self, index: str) -> str:
        """What a ``FROM`` table adds to be read through ``index`` (PostgreSQL's planner needs no hint)."""
        return ""


CACHE_KIB = 16384
"""The page cache of a state file's connection, in KiB (SQLite's default is 2,000)."""


class SqliteDialect(Dialect):
    """A state file: WAL journal, one writer at a time (``BEGIN IMMEDIATE``), a busy timeout."""

    errors = (sqlite3.Error,)

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path, self.where, self.busy_timeout = path, str(path), busy_timeout

    def connect(self, *, durable: bool = False) -> sqlite3.Connection:
        connection = connect(self.path, self.busy_timeout)
        try:
            # 16 MB of pages rather than 2: a plan looks each record's hash up in an index whose
            # pages a 100,000-SKU store no longer fits in 2 MB (a re-plan's look-ups 0.8x the CPU).
            connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            if durable:
                connection.execute("PRAGMA synchronous=FULL")
        except BaseException:
            connection.close()
            raise
        return connection

    def translate(self, exc: Exception) -> StateError:
        assert isinstance(exc, sqlite3.Error)
        return state_error(self.path, exc, self.busy_timeout)

    def begin(self, write: bool) -> str:
        return "BEGIN IMMEDIATE" if write else "BEGIN"

    def indexed_by(self, index: str) -> str:
        # Without statistics SQLite prefers the primary key's prefix (every row of a marketplace).
        return f" INDEXED BY {index}"

    def one_of(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"IN ({', '.join('?' * len(values))})", list(values)

    def in_transaction(self, connection: Any) -> bool:
        return bool(connection.in_transaction)

    def executescript(self, connection: Any, script: str) -> None:
        connection.executescript(script)

    def stream(self, connection: Any, sql: str, params: Sequence[Any]) -> Any:
        return connection.execute(sql, params)  # SQLite steps through the rows as they are fetched

    def columns(self, db: Db, table: str) -> set[str]:
        return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})").fetchall()}

    def tables(self, db: Db) -> set[str]:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
        return {str(row[0]) for row in rows}

    def lock_schema(self, db: Db) -> None:
        pass  # the schema script runs outside a transaction, each statement IF NOT EXISTS

    def set_wait(self, db: Db, seconds: float) -> None:
        db.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")


class Cursor:
    """A cursor whose rows are fetched under the store's error translation (damage shows on reads too)."""

    def __init__(self, cursor: Any, guard: Callable[[], Any]) -> None:
        self._cursor = cursor
        self._guard = guard

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def fetchone(self) -> Any:
        with self._guard():
            return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        with self._guard():
            return list(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Any]:
        while True:
            with self._guard():
                rows = self._cursor.fetchmany(BATCH)
            if not rows:
                return
            yield from rows


T = TypeVar("T")


class Db:
    """One connection of the store. Every database error leaves it as a :class:`StateError`.

    Used like a ``sqlite3.Connection`` (``execute``, ``executemany``, ``executescript``, and
    ``with db:`` for a transaction), so call sites need no error handling of their own; SQL is
    spelled as SQLite reads it and the dialect rewrites it. Once a lock of this process is lost,
    every statement raises :class:`LockLostError`.
    """

    def __init__(self, dialect: Dialect, *, durable: bool = False) -> None:
        self.dialect = dialect
        self.where = dialect.where
        self.busy_timeout = dialect.busy_timeout
        with self.translated():
            self.connection = dialect.connect(durable=durable)
        self.check: Callable[[], None] = lambda: None

    @contextmanager
    def translated(self) -> Iterator[None]:
        try:
            yield
        except self.dialect.errors as exc:
            raise self.dialect.translate(exc) from exc

    def execute(self, sql: str, params: Sequence[Any] = (), *, checked: bool = True) -> Cursor:
        """Run one statement; ``checked=False``: even after this process lost a lock (to release it)."""
        if checked:
            self.check()
        with self.translated():
            return Cursor(self.connection.execute(self.dialect.sql(sql), params), self.translated)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> Cursor:
        self.check()
        with self.translated():
            cursor = self.connection.cursor()
            cursor.executemany(self.dialect.sql(sql), params)
            return Cursor(cursor, self.translated)

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        """The rows of a query that may return very many (every SKU of a marketplace), read a batch
        at a time: memory stays bounded by a batch on both databases."""
        self.check()
        with self.translated():
            cursor = self.dialect.stream(self.connection, self.dialect.sql(sql), params)
        try:
            yield from Cursor(cursor, self.translated)
        finally:
            with self.translated():
                cursor.close()

    def one_of(self, values: Sequence[Any], size: int = 500) -> Iterator[tuple[str, list[Any]]]:
        """``values`` in chunks, each as a column's condition "is one of" and its parameters (SQLite
        takes a bounded number of parameters; PostgreSQL takes one array)."""
        for start in range(0, len(values), size):
            yield self.dialect.one_of(values[start : start + size])

    def load(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert ``rows`` into ``table`` in bulk as they come (see :meth:`Dialect.load`); how many."""
        self.check()
        count = 0

        def counted() -> Iterator[Sequence[Any]]:
            nonlocal count
            for row in rows:
                count += 1
                yield row

        with self.translated():
            self.dialect.load(self.connection, table, columns, counted())
        return count

    def upsert(self, into: Upsert, rows: Iterable[Sequence[Any]]) -> None:
        """:func:`replace_into` for every row, as this database does it fastest (see
        :meth:`Dialect.upsert`); the rows are held at once (a caller's batch)."""
        self.check()
        with self.translated():
            self.dialect.upsert(self.connection, into, list(rows))

    def executescript(self, script: str) -> None:
        self.check()
        with self.translated():
            self.dialect.executescript(self.connection, script)

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[None]:
        """One transaction, committed when the block ends, rolled back when it raises. ``write``: a
        transaction that reads before it writes; SQLite takes the file's write lock at once, so two
        of them never deadlock, PostgreSQL locks the rows as they are read ``FOR UPDATE``. Inside a
        transaction already open (the schema's), the block joins it."""
        if self.dialect.in_transaction(self.connection):
            yield
            return
        with self:
            self.execute(self.dialect.begin(write))
            yield

    def retried(self, work: Callable[[], T], *, write: bool = False) -> T:
        """``work()`` in one transaction, run again from the start (a few times) when the database
        rolled it back to keep concurrent transactions consistent (PostgreSQL: a serialization
        failure, a deadlock)."""
        for attempt in range(1, RETRIES + 1):
            try:
                with self.transaction(write=write):
                    return work()
            except ConflictError:
                if attempt == RETRIES:
                    raise
                log.info(
                    "state store %s: a transaction conflicted with another; retry %d", self.where, attempt
                )
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def schema(self) -> Iterator[None]:
        """Create or migrate tables: on PostgreSQL in one transaction that other processes opening
        the same empty database wait for; SQLite runs its script as it comes (``IF NOT EXISTS``)."""
        if not self.dialect.schema_in_transaction:
            yield
            return
        with self.transaction(write=True):
            self.dialect.lock_schema(self)
            yield

    def __enter__(self) -> Db:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        with self.translated():
            if kind is None:
                self.connection.commit()
            else:
                self.connection.rollback()

    def close(self) -> None:
        with self.translated():
            self.connection.close()


def insert_new(table: str, columns: Sequence[str]) -> str:
    """``INSERT OR IGNORE`` as both databases spell it: nothing is written when the row exists."""
    return f"{_insert(table, columns)} ON CONFLICT DO NOTHING"


def replace_into(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """``INSERT OR REPLACE`` as both databases spell it: the row with the same ``key`` takes new values."""
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns if column not in key)
    return f"{_insert(table, columns)} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


def _insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=busy_timeout, check_same_thread=False)


def pid_namespace() -> str:
    """This process's pid namespace: a pid means the same process only within one (containers)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def unlock_command(lock: str) -> str:
    """The command that releases ``lock`` by hand: apply locks are named by marketplace, order runs'
    as ``orders:NAME``."""
    if lock.startswith("orders:"):
        return f"tradepost unlock -m {lock.removeprefix('orders:')} --orders"
    return f"tradepost unlock -m {lock}"


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


@dataclass(frozen=True)
class LockHolder:
    """Who holds a marketplace's lock, since when, and until when without renewal."""

    name: str
    holder: str
    pid: int
    host: str
    acquired_at: float
    expires_at: float
    token: str = ""
    pid_namespace: str = ""

    def who(self) -> str:
        return f"{self.holder} (pid {self.pid} on {self.host}) since {when(self.acquired_at)}"

    def describe(self) -> str:
        return f"{self.who()}; its lease expires at {when(self.expires_at)}"

    def taken_over(self, now: float, host: str, namespace: str) -> str | None:
        """Why another run may take this lock now, or None while its holder keeps it."""
        if self.expires_at <= now:
            return f"its lease expired at {when(self.expires_at)}"
        if self.host == host and self.pid_namespace == namespace and not _alive(self.pid):
            return f"process {self.pid} is gone from {host}"
        return None


def read_holder(name: str, row: Sequence[Any]) -> LockHolder:
    """A lock row as read; a value that cannot be read makes the lock expired (it is our own table)."""
    holder, pid, host, acquired_at, expires_at, token, namespace = row

    def number(value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return 0.0

    return LockHolder(
        name,
        str(holder),
        int(number(pid)),
        str(host),
        number(acquired_at),
        number(expires_at),
        str(token),
        str(namespace),
    )


LOCK_COLUMNS = "holder, pid, host, acquired_at, expires_at, token, pid_namespace"


class Lease(threading.Thread):
    """Renews one lock's expiry every third of the lease, on a connection of its own, while the run lives.

    Renewal matches the holder's token: when the row is gone or another run's, the lock is lost
    and the store stops the run at its next statement.
    """

    def __init__(self, dialect: Dialect, name: str, token: str, lease: float, expires_at: float) -> None:
        super().__init__(name=f"tradepost-lease-{name}", daemon=True)
        self.dialect, self.lock_name, self.token, self.lease = dialect, name, token, lease
        self.busy_timeout = min(dialect.busy_timeout, lease / 3)
        self.expires_at = expires_at
        self.stopped = threading.Event()
        self.lost: str | None = None
        self.renewals = 0

    def run(self) -> None:
        try:
            db = Db(self.dialect)
            self.dialect.set_wait(db, self.busy_timeout)
        except StateError as exc:  # the store opened this same database a moment ago: unlikely
            self.lost = f"this run cannot renew its lock on {self.lock_name} ({exc}); the run stopped"
            return
        try:
            while not self.stopped.wait(self.lease / 3):
                self.lost = self._renew(db)
                if self.lost:
                    return
        finally:
            with suppress(StateError):
                db.close()

    def _renew(self, db: Db) -> str | None:
        """Push the expiry one lease ahead; why the lock is lost, or None while it is held."""
        expires_at = time.time() + self.lease
        try:
            cursor = db.execute(
                "UPDATE locks SET expires_at = ? WHERE marketplace = ? AND token = ?",
                (expires_at, self.lock_name, self.token),
            )
            if cursor.rowcount == 1:
                self.expires_at = expires_at
                self.renewals += 1
                return None
            row = db.execute(
                f"SELECT {LOCK_COLUMNS} FROM locks WHERE marketplace = ?", (self.lock_name,)
            ).fetchone()
        except StateError as exc:  # busy or failing: the next beat tries again, while the lease lasts
            log.warning("could not renew the lock on %s in %s: %s", self.lock_name, self.dialect.where, exc)
            if time.time() < self.expires_at:
                return None
            return (
                f"this run could not renew its lock on {self.lock_name} before its lease expired ({exc}); "
                "the run stopped; run it again"
            )
        lost = f"this run lost its lock on {self.lock_name}: "
        if row is None:
            return lost + "it was released by hand (`tradepost unlock`); the run stopped; run it again"
        holder = read_holder(self.lock_name, row)
        return lost + f"it is now held by {holder.describe()}; the run stopped; run it again"

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=self.busy_timeout + 5)
