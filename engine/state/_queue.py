"""The notification queue: changed SKUs, held in the state store until each marketplace is done.

The guarantee: :meth:`NotificationQueue.enqueue` returns only after the SKU's row is committed
durably (SQLite: ``synchronous=FULL``, the WAL is on disk; PostgreSQL: its default synchronous
commit), so neither a killed process nor a power cut loses it, and an endpoint that answers 2xx
after it has acknowledged nothing it could lose. Repeats for one SKU are one row: the flags are
OR-ed and the newest change date kept, so a SKU changed fifty times in a second is read once.

A worker leases a batch with :meth:`~NotificationQueue.take`: the rows are its own until the lease
runs out (wall-clock time, as the store's marketplace locks), so a worker killed mid-batch loses
nothing: its SKUs come back to the next ``take`` once the lease expires (on PostgreSQL, workers
taking at once skip each other's rows, ``FOR UPDATE SKIP LOCKED``, so no two get one SKU); one
that stops cleanly hands them back at once with :meth:`~NotificationQueue.release`. A lease
token names the version taken: a worker that takes as an ``owner`` takes its own rows again once
they are notified again, and a release or a clearing for an older version leaves a newer lease be. Each
marketplace's outcome is recorded with :meth:`~NotificationQueue.done`; a row leaves the queue
when every marketplace has one for the version that was taken. A notification merged into a row
after it was taken bumps its version, so the SKU is read again rather than marked done on what was
read before it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine import failpoints
from engine.connectors._source import Changed
from engine.state._db import Db, replace_into

if TYPE_CHECKING:
    from engine.state._store import StateStore

QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    sku_id TEXT PRIMARY KEY,
    flags INTEGER NOT NULL,
    changed_at TEXT NOT NULL,
    received_at REAL NOT NULL,
    version INTEGER NOT NULL,
    leased_until REAL NOT NULL DEFAULT 0,
    lease_token TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notifications_by_lease ON notifications (leased_until, received_at);
CREATE TABLE IF NOT EXISTS notification_outcomes (
    sku_id TEXT NOT NULL,
    marketplace TEXT NOT NULL,
    version INTEGER NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (sku_id, marketplace)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notification_lags (
    marketplace TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    lag REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS notification_lags_by_time ON notification_lags (marketplace, recorded_at);
"""
"""The queue's tables (schema version 3), created with the store's own; ``notification_lags`` (new
tables need no migration: the script adds them) keeps, per marketplace, how long each notification
waited for its outcome, for :data:`LAGS_KEPT` seconds: `tradepost report`'s stock sync lag."""
LAGS_KEPT = 90 * 86400.0
_NEW_LAG = "INSERT INTO notification_lags (marketplace, recorded_at, lag) VALUES (?, ?, ?)"

_SET_OUTCOME = replace_into(
    "notification_outcomes", ("sku_id", "marketplace", "version", "recorded_at"), ("sku_id", "marketplace")
)

WORK_LEASE = 300.0
"""Seconds a taken batch stays a worker's before it comes back to the queue."""


Change = Changed
"""What to read again for a SKU: the connector contract's hint (:class:`~engine.connectors.Changed`)."""


@dataclass(frozen=True)
class QueueCounts:
    """The queue at a glance: SKUs waiting, SKUs a worker holds, and the oldest arrival (or None)."""

    queued: int
    leased: int
    oldest_received_at: float | None

    def to_dict(self) -> dict[str, int | float | None]:
        return {"queued": self.queued, "leased": self.leased, "oldest_received_at": self.oldest_received_at}


@dataclass(frozen=True)
class QueuedSku:
    """One SKU as a worker took it: what changed, which version, and the marketplaces already done."""

    sku_id: str
    changes: Change
    changed_at: str
    received_at: float
    version: int
    lease_token: str
    done_for: frozenset[str]


def newer(first: str, second: str) -> str:
    """The later of two change dates. VTEX's format is undocumented: ISO 8601 dates compare as
    dates; when either cannot be read as one, the one received last (``second``) wins."""
    try:
        a, b = datetime.fromisoformat(first), datetime.fromisoformat(second)
        return first if (a.tzinfo is None) == (b.tzinfo is None) and a > b else second
    except ValueError:
        return second


@dataclass
class _Ticket:
    """One notification waiting for a commit (:meth:`NotificationQueue.enqueue`'s group commit)."""

    sku_id: str
    flags: int
    changed_at: str
    finished: bool = False
    error: BaseException | None = None


class NotificationQueue:
    """The queue of changed SKUs in a state store, on a connection of its own, safe from any thread."""

    def __init__(self, store: StateStore) -> None:
        self.path = store.path
        self.db = Db(store.dialect, durable=True)
        self._lock = threading.Lock()
        self._arrivals = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._committing = False

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> NotificationQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enqueue(self, sku_id: str, changes: Change, changed_at: str) -> None:
        """Queue a SKU, or merge into its row (flags OR-ed, newest date kept); returns once committed.

        Group commit: notifications arriving while another commit is under way wait for it, then the
        first of them commits every one waiting in one transaction (one fsync), and each returns once
        the transaction holding it has committed; a failed transaction fails every caller in it (none
        was acknowledged). At 300 notifications a second this is a few commits a second, not 300."""
        ticket = _Ticket(sku_id, int(changes), changed_at)
        batch: list[_Ticket] = []
        with self._arrivals:
            self._waiting.append(ticket)
            while not ticket.finished and not batch:
                if self._committing:
                    self._arrivals.wait()
                else:  # lead the next commit: every notification waiting now goes in it
                    self._committing, batch, self._waiting = True, self._waiting, []
        if batch:
            error: BaseException | None = None
            try:
                with self._lock:
                    self._commit(batch)
            except BaseException as exc:
                error = exc
                raise
            finally:
                with self._arrivals:
                    for each in batch:
                        each.finished, each.error = True, error
                    self._committing = False
                    self._arrivals.notify_all()
        if ticket.error is not None:
            raise ticket.error
        failpoints.reach("notify:queued")  # committed; the endpoint has not answered yet

    def enqueue_many(self, notifications: Sequence[tuple[str, Change, str]]) -> None:
        """:meth:`enqueue` for several ``(sku_id, changes, changed_at)`` at once, in one transaction,
        in their order; returns once it is committed (a failure acknowledges none). An endpoint on an
        event loop gathers the notifications that arrive while a commit runs and hands them over
        here together: one thread hop and one transaction for the lot, not one of each apiece."""
        if not notifications:
            return
        batch = [_Ticket(sku_id, int(changes), changed_at) for sku_id, changes, changed_at in notifications]
        with self._lock:
            self._commit(batch)
        failpoints.reach("notify:queued")  # committed; the endpoint has not answered yet

    def _commit(self, batch: list[_Ticket]) -> None:
        """Merge ``batch`` into the queue in one transaction."""
        now, locked = time.time(), self.db.dialect.for_update

        def merge() -> None:
            for ticket in batch:
                inserted = self.db.execute(
                    "INSERT INTO notifications VALUES (?, ?, ?, ?, 1, 0, '') ON CONFLICT DO NOTHING",
                    (ticket.sku_id, ticket.flags, ticket.changed_at, now),
                ).rowcount
                if not inserted:
                    flags, changed = self.db.execute(
                        f"SELECT flags, changed_at FROM notifications WHERE sku_id = ?{locked}",
                        (ticket.sku_id,),
                    ).fetchone()
                    self.db.execute(
                        "UPDATE notifications SET flags = ?, changed_at = ?, version = version + 1 "
                        "WHERE sku_id = ?",
                        (int(flags) | ticket.flags, newer(str(changed), ticket.changed_at), ticket.sku_id),
                    )
            failpoints.reach("notify:before-commit")

        self.db.retried(merge, write=True)

    def take(self, limit: int, lease: float = WORK_LEASE, owner: str | None = None) -> list[QueuedSku]:
        """Lease up to ``limit`` SKUs not held by a live lease, oldest first.

        ``owner`` is a worker that keeps taking for its life (a fresh random id of its own): its
        lease tokens then name it and the version taken, and its own rows notified again since it
        took them are taken again at once, lease or not, so that each of its marketplaces goes on
        to the newer version without waiting for the slowest to finish the older one. Without it,
        each call leases under a token of its own."""
        now = time.time()
        prefix = f"{owner or uuid.uuid4().hex}/"
        skip = f"{self.db.dialect.for_update} SKIP LOCKED" if self.db.dialect.for_update else ""
        free = "leased_until <= ?"
        arguments: list[float | str] = [now]
        if owner:  # or one of the owner's, notified again since it took it (its token names the version)
            free = f"({free} OR (lease_token LIKE ? AND lease_token <> ? || CAST(version AS TEXT)))"
            arguments += [f"{prefix}%", prefix]

        def lease_rows() -> tuple[list[Any], dict[tuple[str, int], set[str]]]:
            rows = self.db.execute(
                "SELECT sku_id, flags, changed_at, received_at, version FROM notifications "
                f"WHERE {free} ORDER BY received_at, sku_id LIMIT ?{skip}",
                (*arguments, limit),
            ).fetchall()
            self.db.executemany(
                "UPDATE notifications SET leased_until = ?, lease_token = ? WHERE sku_id = ?",
                [(now + lease, f"{prefix}{row[4]}", row[0]) for row in rows],
            )
            return rows, self._done_for([str(row[0]) for row in rows])

        with self._lock:
            rows, done = self.db.retried(lease_rows, write=True)
        return [
            QueuedSku(
                str(sku_id),
                Change(int(flags)),
                str(changed_at),
                float(received_at),
                int(version),
                f"{prefix}{version}",
                frozenset(done.get((str(sku_id), int(version)), ())),
            )
            for sku_id, flags, changed_at, received_at, version in rows
        ]

    def _done_for(self, sku_ids: Sequence[str]) -> dict[tuple[str, int], set[str]]:
        done: dict[tuple[str, int], set[str]] = {}
        for one_of, chunk in self.db.one_of(sku_ids):
            for sku_id, marketplace, version in self.db.execute(
                f"SELECT sku_id, marketplace, version FROM notification_outcomes WHERE sku_id {one_of}", chunk
            ):
                done.setdefault((str(sku_id), int(version)), set()).add(str(marketplace))
        return done

    def done(self, taken: Sequence[QueuedSku], marketplace: str, marketplaces: Collection[str]) -> int:
        """Record ``marketplace``'s outcome for these SKUs; a SKU whose every one of ``marketplaces``
        has an outcome for the version taken leaves the queue. Returns how many left it."""
        now = time.time()

        def record() -> int:
            left = 0
            for item in sorted(taken, key=lambda item: item.sku_id):  # rows locked in one order: no deadlock
                self.db.execute(
                    f"SELECT version FROM notifications WHERE sku_id = ?{self.db.dialect.for_update}",
                    (item.sku_id,),
                ).fetchone()
                self.db.execute(_SET_OUTCOME, (item.sku_id, marketplace, item.version, now))
                self.db.execute(_NEW_LAG, (marketplace, now, max(0.0, now - item.received_at)))
                recorded = {
                    str(row[0])
                    for row in self.db.execute(
                        "SELECT marketplace FROM notification_outcomes WHERE sku_id = ? AND version = ?",
                        (item.sku_id, item.version),
                    )
                }
                if not recorded >= set(marketplaces):
                    continue
                gone = self.db.execute(
                    "DELETE FROM notifications WHERE sku_id = ? AND version = ?", (item.sku_id, item.version)
                ).rowcount
                if gone:
                    self.db.execute("DELETE FROM notification_outcomes WHERE sku_id = ?", (item.sku_id,))
                else:  # notified again meanwhile: the newer change is free to take now, not at lease end
                    self.db.execute(
                        "UPDATE notifications SET leased_until = 0, lease_token = '' "
                        "WHERE sku_id = ? AND lease_token = ?",
                        (item.sku_id, item.lease_token),
                    )
                left += gone
            self.db.execute(
                "DELETE FROM notification_lags WHERE marketplace = ? AND recorded_at < ?",
                (marketplace, now - LAGS_KEPT),
            )
            return left

        with self._lock:
            return self.db.retried(record, write=True)

    def release(self, taken: Sequence[QueuedSku]) -> None:
        """Hand SKUs back before their lease runs out (a worker stopping cleanly)."""
        with self._lock, self.db.transaction(write=True):
            self.db.executemany(
                "UPDATE notifications SET leased_until = 0, lease_token = '' "
                "WHERE sku_id = ? AND lease_token = ?",
                sorted((item.sku_id, item.lease_token) for item in taken),
            )

    def release_owned(self, owner: str) -> None:
        """Hand back every SKU a worker that took as ``owner`` still holds (it is stopping)."""
        with self._lock, self.db.transaction(write=True):
            self.db.execute(
                "UPDATE notifications SET leased_until = 0, lease_token = '' WHERE lease_token LIKE ?",
                (f"{owner}/%",),
            )

    def counts(self) -> QueueCounts:
        with self._lock:
            queued, leased, oldest = self.db.execute(
                "SELECT count(*), coalesce(sum(CASE WHEN leased_until > ? THEN 1 ELSE 0 END), 0), "
                "min(received_at) FROM notifications",
                (time.time(),),
            ).fetchone()
        return QueueCounts(int(queued), int(leased), None if oldest is None else float(oldest))
