"""The state store's SQLite connection: errors translated at its boundary, and lock leases.

Every statement of the state store (listings, orders) goes through :class:`Db`,
which turns any ``sqlite3`` error into a :class:`StateError` naming the file and
what to do, by SQLite's result code: a damaged file (restore a backup, or
``tradepost state rebuild``), a file or folder that cannot be written (fix
permissions), another writer holding the file past the busy timeout (wait).

A lock is a row with a lease: :class:`Lease` renews its expiry every third of
the lease, on a connection of its own, from a thread, so a run busy planning a
large catalog keeps its lock; when the row is gone or another run's, the lock is
lost and :class:`Db` stops the run at its next statement.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


class Cursor:
    """A cursor whose rows are fetched under the store's error translation (damage shows on reads too)."""

    def __init__(self, cursor: sqlite3.Cursor, guard: Callable[[], Any]) -> None:
        self._cursor = cursor
        self._guard = guard

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        with self._guard():
            return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        with self._guard():
            return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        while True:
            with self._guard():
                row = self._cursor.fetchone()
            if row is None:
                return
            yield row


class Db:
    """The store's one connection. Every ``sqlite3`` error leaves it as a :class:`StateError`.

    Used like a ``sqlite3.Connection`` (``execute``, ``executemany``, ``executescript``, and
    ``with db:`` for a transaction), so call sites need no error handling of their own. Once a
    lock of this process is lost, every statement raises :class:`LockLostError`.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
        self.connection = connection
        self.path = path
        self.busy_timeout = busy_timeout
        self.check: Callable[[], None] = lambda: None

    @contextmanager
    def translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise state_error(self.path, exc, self.busy_timeout) from exc

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        self.check()
        with self.translated():
            return Cursor(self.connection.execute(sql, params), self.translated)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> Cursor:
        self.check()
        with self.translated():
            return Cursor(self.connection.executemany(sql, params), self.translated)

    def executescript(self, script: str) -> None:
        self.check()
        with self.translated():
            self.connection.executescript(script)

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

    def __init__(
        self, path: Path, name: str, token: str, lease: float, busy_timeout: float, expires_at: float
    ) -> None:
        super().__init__(name=f"tradepost-lease-{name}", daemon=True)
        self.path, self.lock_name, self.token, self.lease = path, name, token, lease
        self.busy_timeout = min(busy_timeout, lease / 3)
        self.expires_at = expires_at
        self.stopped = threading.Event()
        self.lost: str | None = None
        self.renewals = 0

    def run(self) -> None:
        try:
            db = connect(self.path, self.busy_timeout)
        except sqlite3.Error as exc:  # the store opened this same file a moment ago: unlikely
            self.lost = f"this run cannot renew its lock on {self.lock_name} ({exc}); the run stopped"
            return
        try:
            while not self.stopped.wait(self.lease / 3):
                self.lost = self._renew(db)
                if self.lost:
                    return
        finally:
            db.close()

    def _renew(self, db: sqlite3.Connection) -> str | None:
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
        except sqlite3.Error as exc:  # busy or failing: the next beat tries again, while the lease lasts
            log.warning("could not renew the lock on %s in %s: %s", self.lock_name, self.path, exc)
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
