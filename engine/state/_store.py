"""The state store: what was last applied to each marketplace, per SKU.

SQLite by default (zero setup, one file next to the project); PostgreSQL by URL
(``postgresql://``) when several processes share the work: the same tables, the
same behaviour, the same schema version, through one connection wrapper
(:class:`Db`) and two small dialects (:mod:`engine.state._db`,
:mod:`engine.state._pg`); Tradepost creates and migrates the tables itself on
first use. The diff only
needs, per SKU, the hash of the listing's content and the price and quantity
last sent, so rows stay small and a million SKUs fit in a few hundred MB of
disk and no memory: the plan looks rows up in batches as the catalog streams.

Failures are errors a user can act on, never tracebacks. Every statement goes
through one connection wrapper (:class:`Db`) that turns any database error
into a :class:`StateError` naming the store and what to do: a damaged file
(restore a backup, or ``tradepost state rebuild``), a file or folder that
cannot be written (fix permissions), another writer holding the file past the
busy timeout (``TRADEPOST_STATE_TIMEOUT`` seconds, 30 by default: wait for it).
A listing row that cannot be read (a price that is not a number, a NULL
quantity) is logged as a warning and treated as absent: the SKU is planned as a
create, and creates look the seller SKU up on the marketplace first, so it is
adopted rather than listed twice. An order row that cannot be read is an error
(see :mod:`engine.orders._store`).

One run per marketplace at a time: a lock row with a lease. The holder writes
an expiry (``TRADEPOST_LOCK_LEASE`` seconds, 60 by default) and a thread renews
it every third of the lease while the run lives. A lock whose lease ran out, or
whose process is gone from this host, is taken over wherever it ran; one that
is being renewed never is. ``tradepost unlock`` releases one by hand. Leases
use wall-clock time, so hosts sharing a state file must agree on the time to
well within the lease.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

from engine._diagnostics import TradepostError
from engine.model._listing import Listing
from engine.state._db import (
    BUSY_TIMEOUT,
    LEASE,
    LOCK_COLUMNS,
    Db,
    Dialect,
    Lease,
    SqliteDialect,
    Upsert,
    insert_new,
    pid_namespace,
    read_holder,
    replace_into,
    seconds_from_env,
    unlock_command,
    when,
)
from engine.state._db import LockHolder as LockHolder  # re-exported: part of this module's API
from engine.state._db import LockLostError as LockLostError
from engine.state._db import StateError as StateError
from engine.state._liststatus import LISTING_STATUS_SCHEMA
from engine.state._queue import QUEUE_SCHEMA

SCHEMA_VERSION = 6
"""2: locks carry a lease (``expires_at``), the holder's ``token`` and its ``pid_namespace``.
3: the notification queue (:data:`QUEUE_SCHEMA`): its tables are new, so the schema script adds them.
4: a listing carries the ``source_hash`` of the catalog record it was applied from (indexed by
marketplace), so a plan skips a record unchanged since (:meth:`StateStore.unchanged_sources`); the
new ``excluded_sources`` table holds the hash of each SKU's record its rules do not select, so a
plan skips those too (:meth:`StateStore.excluded_sources`).
5: ``excluded_sources`` holds invalid records too: a row's ``reasons`` (JSON) are those of a record
its rules found invalid, NULL for one they do not select, so a plan reports an invalid record
unchanged since without parsing or evaluating it again.
6: a ``withdrawn`` row keeps the ``content_hash`` of the listing withdrawn (NULL for one read back
by a rebuild, or withdrawn before), so a SKU selected again with the same content is brought back
with its price and stock alone (:meth:`StateStore.withdrawn_listings`).
The number is the same on both databases (``meta.schema_version``)."""

log = logging.getLogger("tradepost.state")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS listings (
    marketplace TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    price TEXT NOT NULL,
    sale_price TEXT,
    quantity INTEGER NOT NULL,
    remote_id TEXT,
    applied_at REAL NOT NULL,
    source_hash TEXT,
    PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    marketplace TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS pending (
    marketplace TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    token TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS withdrawn (
    marketplace TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    content_hash TEXT,
    PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locks (
    marketplace TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    expires_at REAL NOT NULL DEFAULT 0,
    token TEXT NOT NULL DEFAULT '',
    pid_namespace TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS excluded_sources (
    marketplace TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    source_hash TEXT NOT NULL,
    reasons TEXT,
    PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS excluded_sources_hash ON excluded_sources (marketplace, source_hash);
CREATE TABLE IF NOT EXISTS sku_errors (
    marketplace TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    run_id INTEGER,
    reasons TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
"""


_COLUMNS = "sku_id, product_id, content_hash, price, sale_price, quantity, remote_id, source_hash"
_SOURCE_INDEX = "CREATE INDEX IF NOT EXISTS listings_source ON listings (marketplace, source_hash)"
"""How a plan finds the SKU of a record's bytes without parsing them (``unchanged_sources``)."""
# A record is skipped only while its SKU's last outcome is settled: no error, no submission to confirm.
_SETTLED = (
    "NOT EXISTS (SELECT 1 FROM sku_errors e WHERE e.marketplace = l.marketplace AND e.sku_id = l.sku_id) "
    "AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.marketplace = l.marketplace AND p.sku_id = l.sku_id)"
)
_SET_META = replace_into("meta", ("key", "value"), ("key",))
_LOCK_ROW = ("marketplace", *LOCK_COLUMNS.split(", "))
_NEW_LOCK = insert_new("locks", _LOCK_ROW)
_SET_LOCK = replace_into("locks", _LOCK_ROW, ("marketplace",))
_SET_PENDING = replace_into(
    "pending", ("marketplace", "sku_id", "token", "recorded_at"), ("marketplace", "sku_id")
)
_EXCLUDED = Upsert(
    "excluded_sources",
    ("marketplace", "sku_id", "source_hash", "reasons"),
    ("marketplace", "sku_id"),
)
"""Where :meth:`StateStore.note_excluded` upserts: the table, its columns, its key."""
_SET_ERROR = replace_into(
    "sku_errors", ("marketplace", "sku_id", "run_id", "reasons", "recorded_at"), ("marketplace", "sku_id")
)
_UPSERT = (
    "INSERT INTO listings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (marketplace, sku_id) "
    "DO UPDATE SET "
    "product_id = excluded.product_id, content_hash = excluded.content_hash, price = excluded.price, "
    "sale_price = excluded.sale_price, quantity = excluded.quantity, "
    "remote_id = coalesce(excluded.remote_id, listings.remote_id), applied_at = excluded.applied_at, "
    "source_hash = excluded.source_hash"
)
# The row applied is still the one the record yields: only then may the record's hash be noted.
_NOTE_SOURCE = (
    "UPDATE listings SET source_hash = ? WHERE marketplace = ? AND sku_id = ? AND content_hash = ? "
    "AND price = ? AND coalesce(sale_price, '') = ? AND quantity = ?"
)


class LockedError(TradepostError):
    """Another run holds the marketplace's lock."""


class Withdrawn(NamedTuple):
    """A listing withdrawn from a marketplace (paused, or its variation's stock zeroed): its id
    there, and the content hash it was withdrawn with (None when not known: read back by a rebuild,
    or withdrawn by a Tradepost before schema 6)."""

    remote_id: str
    content_hash: str | None


@dataclass(frozen=True)
class AppliedListing:
    """What was last applied for one SKU: enough to tell which kind of update a change needs."""

    sku_id: str
    product_id: str
    content_hash: str
    price: Decimal
    sale_price: Decimal | None
    quantity: int
    remote_id: str | None = None
    source_hash: str | None = None
    """The hash of the catalog record (and rules) the row was applied from; None when unknown."""


def applied_from(
    listing: Listing, remote_id: str | None = None, source_hash: str | None = None
) -> AppliedListing:
    """The state row recording that ``listing`` was applied as it is (from the record ``source_hash``)."""
    return AppliedListing(
        listing.sku_id,
        listing.product_id,
        listing.content_hash(),
        listing.price,
        listing.sale_price,
        listing.quantity,
        remote_id,
        source_hash,
    )


@dataclass(frozen=True)
class Applied:
    """Rows now applied: one SKU's, or every member of a family its first SKU's request created
    (written by one call, so a kill leaves all of them or none)."""

    rows: tuple[AppliedListing, ...]
    family: bool = False


@dataclass(frozen=True)
class Deleted:
    """A SKU whose listing is gone from the marketplace."""

    sku_id: str


@dataclass(frozen=True)
class Failed:
    """A SKU whose change failed, and why (already redacted)."""

    sku_id: str
    reason: str


Outcome = Applied | Deleted | Failed
"""What one change's calls came to, as :meth:`StateStore.record_outcomes` writes it."""


@dataclass(frozen=True)
class FullPass:
    """A full reconciliation of one marketplace: ``kind`` is ``apply`` or ``plan``.

    A full pass compared every SKU of a catalog read to its end; an apply counts only when all
    its changes applied (``failed`` is then 0; it is kept so the record says so).
    """

    marketplace: str
    kind: str
    finished_at: float
    applied: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "finished_at": self.finished_at,
            "age_seconds": max(0.0, time.time() - self.finished_at),
            "applied": self.applied,
            "failed": self.failed,
        }


class StateStore:
    """The state in an SQLite file or a PostgreSQL database; one instance per process, used from one
    thread (lease threads aside)."""

    def __init__(
        self,
        url: str | Path,
        *,
        busy_timeout: float | None = None,
        lease: float | None = None,
        secrets_base: Path | None = None,
    ) -> None:
        """``url``: a file path, ``sqlite:///path`` or ``postgresql://``; ``secrets_base``: the folder a
        password's ``file:PATH`` is relative to (the config's)."""
        self.busy_timeout = busy_timeout or seconds_from_env("TRADEPOST_STATE_TIMEOUT", BUSY_TIMEOUT)
        self.lease = lease or seconds_from_env("TRADEPOST_LOCK_LEASE", LEASE)
        self._leases: dict[str, Lease] = {}
        self._unreadable: set[tuple[str, str]] = set()
        self.dialect = _dialect(str(url), self.busy_timeout, secrets_base)
        self.url = self.dialect.where
        """The store as messages name it: never a password."""
        self.path = self.dialect.path if isinstance(self.dialect, SqliteDialect) else None
        """The SQLite file (None on PostgreSQL)."""
        self.db = Db(self.dialect)
        try:
            if self.path is not None:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            with self.db.schema():
                self.db.executescript(_SCHEMA + QUEUE_SCHEMA + LISTING_STATUS_SCHEMA)
                self._migrate()
                self.db.execute(_SOURCE_INDEX)
        except BaseException:
            self.db.close()
            raise
        self.db.check = self._check_leases

    def _migrate(self) -> None:
        """Bring a store of an older schema to this one (in one transaction); refuse a newer one."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            version = None if row is None else int(row[0])
        except ValueError:
            raise StateError(
                f"state store {self.url} has an unreadable schema version {row[0]!r}; restore it from a "
                "backup, or move it aside and run `tradepost state rebuild -m MARKETPLACE`"
            ) from None
        if version is None:
            self.db.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", (str(SCHEMA_VERSION),)
            )
            return
        if version > SCHEMA_VERSION:
            raise StateError(f"state store {self.url} is of a newer version ({version}); upgrade tradepost")
        if version == SCHEMA_VERSION:
            return
        with self.db.transaction(write=True):
            if "expires_at" not in self.dialect.columns(self.db, "locks"):
                # 1 -> 2: leases; a version-1 lock lasts one lease from its start
                self.db.execute("ALTER TABLE locks ADD COLUMN expires_at REAL NOT NULL DEFAULT 0")
                self.db.execute("ALTER TABLE locks ADD COLUMN token TEXT NOT NULL DEFAULT ''")
                self.db.execute("ALTER TABLE locks ADD COLUMN pid_namespace TEXT NOT NULL DEFAULT ''")
                self.db.execute("UPDATE locks SET expires_at = acquired_at + ?", (self.lease,))
            # 1 -> 2: creates look the SKU up on the marketplace first; the in-flight journal is gone.
            self.db.execute("DROP TABLE IF EXISTS inflight")
            # 2 -> 3: the notification queue's tables are new; the schema script above made them.
            if "source_hash" not in self.dialect.columns(self.db, "listings"):
                # 3 -> 4: rows applied before carry no source hash: their records are planned in full.
                self.db.execute("ALTER TABLE listings ADD COLUMN source_hash TEXT")
            if "reasons" not in self.dialect.columns(self.db, "excluded_sources"):
                # 4 -> 5: the rows noted before are all records not selected.
                self.db.execute("ALTER TABLE excluded_sources ADD COLUMN reasons TEXT")
            if "content_hash" not in self.dialect.columns(self.db, "withdrawn"):
                # 5 -> 6: listings withdrawn before left no content hash: brought back whole.
                self.db.execute("ALTER TABLE withdrawn ADD COLUMN content_hash TEXT")
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        for name in list(self._leases):
            self._leases.pop(name).stop()
        self.db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------------

    def get_many(self, marketplace: str, sku_ids: Sequence[str]) -> dict[str, AppliedListing]:
        """Applied rows for these SKUs (missing ones are absent from the result)."""
        found: dict[str, AppliedListing] = {}
        for one_of, chunk in self.db.one_of(sku_ids):
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM listings WHERE marketplace = ? AND sku_id {one_of}",
                (marketplace, *chunk),
            )
            for row in rows:
                applied = self._readable(
                    marketplace,
                    row,
                    "planned as if absent: a create looks the seller "
                    "SKU up on the marketplace first, so its listing is adopted, not doubled",
                )
                if applied is not None:
                    found[applied.sku_id] = applied
        return found

    def _readable(self, marketplace: str, row: Sequence[Any], then: str) -> AppliedListing | None:
        """The row as an :class:`AppliedListing`, or None (and one warning per SKU) when it cannot be read."""
        try:
            return _row(row)
        except _BadRow as exc:
            key = (marketplace, str(row[0]))
            if key not in self._unreadable:
                self._unreadable.add(key)
                log.warning("state store %s: %s SKU %s: %s; %s", self.url, marketplace, row[0], exc, then)
            return None

    def unchanged_sources(self, marketplace: str, source_hashes: Sequence[str]) -> dict[str, AppliedListing]:
        """Source hash -> row of the rows applied from these records, whose outcome is settled.

        A SKU whose last apply failed, or whose submission is still to confirm, is left out: its
        record is planned again even though it did not change.
        """
        found: dict[str, AppliedListing] = {}
        for one_of, chunk in self.db.one_of(source_hashes):
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM listings l{self.dialect.indexed_by('listings_source')} "
                f"WHERE marketplace = ? AND source_hash {one_of} "
                f"AND {_SETTLED}",
                (marketplace, *chunk),
            )
            for row in rows:
                applied = self._readable(marketplace, row, "its record is planned in full")
                if applied is not None and applied.source_hash is not None:
                    found[applied.source_hash] = applied
        return found

    def settled_skus(self, marketplace: str, source_hashes: Sequence[str]) -> dict[str, str]:
        """Source hash -> SKU of the rows :meth:`unchanged_sources` would give, without reading the
        rows: for a pass that needs only which lines to skip (an apply sends no unchanged SKU).
        The hash's index holds the SKU, so only the settled checks leave it."""
        found: dict[str, str] = {}
        for one_of, chunk in self.db.one_of(source_hashes):
            rows = self.db.execute(
                f"SELECT source_hash, sku_id FROM listings l{self.dialect.indexed_by('listings_source')} "
                f"WHERE marketplace = ? AND source_hash {one_of} AND {_SETTLED}",
                (marketplace, *chunk),
            )
            found.update((str(source_hash), str(sku_id)) for source_hash, sku_id in rows)
        return found

    def has_sources(self, marketplace: str) -> bool:
        """Whether any record of ``marketplace`` is known by hash (none before its first plan)."""
        row = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM listings WHERE marketplace = ? AND source_hash IS NOT NULL) "
            "OR EXISTS (SELECT 1 FROM excluded_sources WHERE marketplace = ?)",
            (marketplace, marketplace),
        ).fetchone()
        return bool(row[0])

    def excluded_sources(
        self, marketplace: str, source_hashes: Sequence[str]
    ) -> dict[str, tuple[str, str | None]]:
        """Source hash -> (SKU, reasons) of these records when a plan found them not selected
        (reasons None) or invalid (their reasons, as :meth:`note_excluded` got them), and nothing is
        listed for the SKU (a listed one is planned: its withdrawal is a change)."""
        found: dict[str, tuple[str, str | None]] = {}
        for one_of, chunk in self.db.one_of(source_hashes):
            rows = self.db.execute(
                f"SELECT source_hash, sku_id, reasons FROM excluded_sources x"
                f"{self.dialect.indexed_by('excluded_sources_hash')} "
                f"WHERE marketplace = ? AND source_hash {one_of} AND NOT EXISTS "
                "(SELECT 1 FROM listings l WHERE l.marketplace = x.marketplace AND l.sku_id = x.sku_id)",
                (marketplace, *chunk),
            )
            for source_hash, sku_id, reasons in rows:
                found[str(source_hash)] = (str(sku_id), None if reasons is None else str(reasons))
        return found

    def note_excluded(self, marketplace: str, noted: Iterable[tuple[str, str, str | None]]) -> bool:
        """Record that the record of each ``(SKU, source hash, reasons)`` is not selected (reasons
        None) or invalid (its reasons, a JSON text): one row per SKU, so the table stays the size of
        the catalog's part that lists nothing. At once or not at all."""
        rows = [(marketplace, sku_id, source_hash, reasons) for sku_id, source_hash, reasons in noted]
        return self._at_once("not selected records", lambda: self.db.upsert(_EXCLUDED, rows))

    def note_sources(self, marketplace: str, noted: Iterable[tuple[AppliedListing, str]]) -> bool:
        """Record that each row's listing is what the record of that source hash yields now.

        For SKUs a plan found unchanged: no apply writes them, yet their records can be skipped
        next time. A row changed since the plan read it is left as it is (the update matches it).
        At once or not at all, as :meth:`note_full_pass`: False when the store refused.
        """
        rows = [
            (
                source_hash,
                marketplace,
                row.sku_id,
                row.content_hash,
                str(row.price),
                "" if row.sale_price is None else str(row.sale_price),
                row.quantity,
            )
            for row, source_hash in noted
        ]
        return self._at_once("source hashes", lambda: self.db.executemany(_NOTE_SOURCE, rows))

    def all_sku_ids(self, marketplace: str) -> Iterator[str]:
        for (sku_id,) in self.db.stream(
            "SELECT sku_id FROM listings WHERE marketplace = ? ORDER BY sku_id", (marketplace,)
        ):
            yield sku_id

    def get(self, marketplace: str, sku_id: str) -> AppliedListing | None:
        return self.get_many(marketplace, [sku_id]).get(sku_id)

    def has_listings(self, marketplace: str) -> bool:
        """Whether ``marketplace`` has any row (none before its first apply): one index probe."""
        row = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM listings WHERE marketplace = ?)", (marketplace,)
        ).fetchone()
        return bool(row[0])

    def count(self, marketplace: str) -> int:
        (n,) = self.db.execute(
            "SELECT count(*) FROM listings WHERE marketplace = ?", (marketplace,)
        ).fetchone()
        return int(n)

    def fingerprint(self, marketplace: str) -> str:
        """Changes whenever anything was applied for the marketplace: a saved plan checks it."""
        row = self.db.execute(
            "SELECT count(*), coalesce(max(applied_at), 0) FROM listings WHERE marketplace = ?",
            (marketplace,),
        ).fetchone()
        try:
            return f"{row[0]}:{float(row[1]):.6f}"
        except (TypeError, ValueError):  # a malformed applied_at still fingerprints, as itself
            return f"{row[0]}:{row[1]}"

    # -- writes ------------------------------------------------------------------------------

    def record_applied(self, marketplace: str, rows: Iterable[AppliedListing]) -> None:
        now = time.time()
        rows = list(rows)
        with self.db.transaction():
            self.db.executemany(
                "DELETE FROM withdrawn WHERE marketplace = ? AND sku_id = ?",
                [(marketplace, r.sku_id) for r in rows],
            )
            self.db.executemany(
                _UPSERT,
                [_listing_row(marketplace, r, now) for r in rows],
            )

    def record_deleted(self, marketplace: str, sku_ids: Iterable[str]) -> None:
        """Forget the listing, but keep the marketplace's id and the content it was withdrawn with: a
        SKU selected again reuses the id, and sends no content when its content is the same."""
        keys = [(marketplace, s) for s in sku_ids]
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO withdrawn (marketplace, sku_id, remote_id, content_hash) "
                "SELECT marketplace, sku_id, remote_id, content_hash FROM listings "
                "WHERE marketplace = ? AND sku_id = ? AND remote_id IS NOT NULL "
                "ON CONFLICT (marketplace, sku_id) DO UPDATE SET remote_id = excluded.remote_id, "
                "content_hash = excluded.content_hash",
                keys,
            )
            self.db.executemany("DELETE FROM listings WHERE marketplace = ? AND sku_id = ?", keys)

    def record_outcomes(self, marketplace: str, outcomes: Sequence[Outcome]) -> None:
        """Write the outcomes of several changes in one transaction: each SKU applied or deleted
        (its error cleared), or its failure. A family's rows go in a write of their own (as when
        recorded alone), the other SKUs' rows in one."""
        applied = [o for o in outcomes if isinstance(o, Applied)]
        deleted = [o.sku_id for o in outcomes if isinstance(o, Deleted)]
        with self.db.transaction(write=True):
            for family in (o for o in applied if o.family):
                self.record_applied(marketplace, family.rows)
            singles = [row for o in applied if not o.family for row in o.rows]
            if singles:
                self.record_applied(marketplace, singles)
            if deleted:
                self.record_deleted(marketplace, deleted)
            for failed in (o for o in outcomes if isinstance(o, Failed)):
                self.record_error(marketplace, failed.sku_id, failed.reason)
            self.clear_errors(marketplace, [*(row.sku_id for o in applied for row in o.rows), *deleted])

    def on_a_connection_of_its_own(self) -> StateStore:
        """This store on a new connection, for another thread to use while this one is in use: the
        same database and locks (the leases stay this store's, checked before every statement).
        Closing it closes only its connection."""
        twin = copy.copy(self)
        twin._leases = {}
        twin.db = Db(self.dialect)
        twin.db.check = self._check_leases
        return twin

    def replace_marketplace(
        self, marketplace: str, rows: Iterable[AppliedListing], withdrawn: Mapping[str, str]
    ) -> None:
        """Make ``rows`` (and ``withdrawn``: SKU -> remote id) the marketplace's whole state, in one
        transaction: a rebuild read back from the marketplace. Other marketplaces' rows, and this
        one's runs, locks and errors, are left as they are; submissions still to confirm are
        dropped, since what was read back already shows their outcome."""
        now = time.time()
        with self.db.transaction(write=True):
            for table in ("listings", "withdrawn", "pending"):
                self.db.execute(f"DELETE FROM {table} WHERE marketplace = ?", (marketplace,))
            self.db.executemany(
                "INSERT INTO listings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_listing_row(marketplace, r, now) for r in rows),
            )
            self.db.executemany(
                "INSERT INTO withdrawn (marketplace, sku_id, remote_id) VALUES (?, ?, ?)",
                ((marketplace, sku_id, remote_id) for sku_id, remote_id in withdrawn.items()),
            )

    def withdrawn_remote_id(self, marketplace: str, sku_id: str) -> str | None:
        """The marketplace's id of a SKU withdrawn earlier (for a listing it can bring back)."""
        return self.withdrawn_remote_ids(marketplace, [sku_id]).get(sku_id)

    def withdrawn_remote_ids(self, marketplace: str, sku_ids: Sequence[str]) -> dict[str, str]:
        """SKU -> the marketplace's id, for those of these SKUs withdrawn earlier."""
        return {sku: w.remote_id for sku, w in self.withdrawn_listings(marketplace, sku_ids).items()}

    def withdrawn_listings(self, marketplace: str, sku_ids: Sequence[str]) -> dict[str, Withdrawn]:
        """SKU -> its listing withdrawn earlier (the marketplace's id, the content it had), for
        those of these SKUs withdrawn earlier."""
        found: dict[str, Withdrawn] = {}
        for one_of, chunk in self.db.one_of(sku_ids):
            rows = self.db.execute(
                f"SELECT sku_id, remote_id, content_hash FROM withdrawn "
                f"WHERE marketplace = ? AND sku_id {one_of}",
                (marketplace, *chunk),
            )
            found.update(
                (str(sku), Withdrawn(str(remote), None if content is None else str(content)))
                for sku, remote, content in rows
            )
        return found

    # -- outcomes still to confirm, per-SKU errors ---------------------------------------------

    def record_pending(self, marketplace: str, sku_id: str, token: str) -> None:
        self.db.execute(_SET_PENDING, (marketplace, sku_id, token, time.time()))

    def clear_pending(self, marketplace: str, sku_id: str) -> None:
        self.db.execute("DELETE FROM pending WHERE marketplace = ? AND sku_id = ?", (marketplace, sku_id))

    def pending(self, marketplace: str) -> dict[str, str]:
        rows = self.db.execute("SELECT sku_id, token FROM pending WHERE marketplace = ?", (marketplace,))
        return {str(sku_id): str(token) for sku_id, token in rows}

    def record_error(self, marketplace: str, sku_id: str, reason: str) -> None:
        self.db.execute(_SET_ERROR, (marketplace, sku_id, None, reason, time.time()))

    def clear_error(self, marketplace: str, sku_id: str) -> None:
        self.clear_errors(marketplace, [sku_id])

    def clear_errors(self, marketplace: str, sku_ids: Iterable[str]) -> None:
        self.db.executemany(
            "DELETE FROM sku_errors WHERE marketplace = ? AND sku_id = ?", [(marketplace, s) for s in sku_ids]
        )

    def errors(self, marketplace: str) -> dict[str, str]:
        rows = self.db.execute("SELECT sku_id, reasons FROM sku_errors WHERE marketplace = ?", (marketplace,))
        return {str(sku_id): str(reason) for sku_id, reason in rows}

    def error_rows(self, marketplace: str, since: float = 0.0) -> list[tuple[str, str, float]]:
        """(SKU, reason, when) of each SKU whose last change failed at or after ``since``, newest first."""
        rows = self.db.execute(
            "SELECT sku_id, reasons, recorded_at FROM sku_errors WHERE marketplace = ? AND recorded_at >= ? "
            "ORDER BY recorded_at DESC, sku_id",
            (marketplace, since),
        )
        return [(str(sku_id), str(reason), float(at)) for sku_id, reason, at in rows]

    def invalid_reasons(self, marketplace: str) -> Iterator[tuple[str, str]]:
        """(SKU, reasons as a plan noted them: :meth:`note_excluded`) of each record a plan found
        invalid whose SKU is listed nowhere; the only durable record of a plan's invalid SKUs."""
        yield from (
            (str(sku_id), str(reasons))
            for sku_id, reasons in self.db.stream(
                "SELECT sku_id, reasons FROM excluded_sources x "
                "WHERE marketplace = ? AND reasons IS NOT NULL AND NOT EXISTS (SELECT 1 FROM listings l "
                "WHERE l.marketplace = x.marketplace AND l.sku_id = x.sku_id) ORDER BY sku_id",
                (marketplace,),
            )
        )

    def note_run(self, marketplace: str, kind: str, started_at: float, summary: Mapping[str, Any]) -> bool:
        """Record that a ``kind`` run of ``marketplace`` ended now, with its summary (JSON-able): the
        integration log's runs. At once or not at all: a store that refuses never fails the run."""
        row = (marketplace, kind, started_at, time.time(), json.dumps(summary, sort_keys=True, default=str))
        return self._at_once(
            f"{kind} run of {marketplace}",
            lambda: self.db.execute(
                "INSERT INTO runs (marketplace, kind, started_at, finished_at, summary) "
                "VALUES (?, ?, ?, ?, ?)",
                row,
            ),
        )

    def runs(self, marketplace: str, since: float = 0.0) -> list[tuple[str, float, float, dict[str, Any]]]:
        """(kind, started, finished, summary) of each run of ``marketplace`` ended since, newest first
        (a summary that cannot be read is empty)."""
        rows = self.db.execute(
            "SELECT kind, started_at, finished_at, summary FROM runs WHERE marketplace = ? "
            "AND finished_at >= ? ORDER BY finished_at DESC, id DESC",
            (marketplace, since),
        )
        return [(str(kind), float(start), float(end), _summary(text)) for kind, start, end, text in rows]

    # -- one run per marketplace at a time -----------------------------------------------------

    def acquire_lock(self, marketplace: str, holder: str, *, lease: float | None = None) -> None:
        """Take the marketplace's lock with a lease renewed while this store lives, or raise
        :class:`LockedError` naming who holds it, since when and when its lease expires.

        A lock is taken over when its lease ran out (its run died or its host is gone: a killed
        container) or, at once, when its process is gone from this host: a run killed with SIGKILL
        must not block every later one. A lock whose holder keeps renewing is never taken over.
        """
        lease = lease or self.lease
        host, pid, namespace = socket.gethostname(), os.getpid(), pid_namespace()
        token = uuid.uuid4().hex
        now = time.time()
        mine = (marketplace, holder, pid, host, now, now + lease, token, namespace)

        def take() -> None:
            held = self._held(marketplace)
            if held is None and self.db.execute(_NEW_LOCK, mine).rowcount == 1:
                return
            held = held or self._held(marketplace)  # another run inserted it a moment ago
            why = None if held is None else held.taken_over(now, host, namespace)
            if held is not None and why is None:
                raise LockedError(
                    f"{marketplace} is locked by {held.describe()} unless that run renews it; wait for "
                    f"it to finish, or if it is gone run `{unlock_command(marketplace)}`"
                )
            if held is not None:
                log.warning("took over the lock on %s held by %s: %s", marketplace, held.who(), why)
            self.db.execute(_SET_LOCK, mine)

        self.db.retried(take, write=True)
        renewer = Lease(self.dialect, marketplace, token, lease, now + lease)
        self._leases[marketplace] = renewer
        renewer.start()

    def join_lock(self, marketplace: str, token: str) -> None:
        """Work under another process's hold of the marketplace's lock (``token``: its holder's, as
        an ``apply --shards`` coordinator hands it to its shards), renewing it too; every statement
        stops with :class:`LockLostError` once the lock is no longer that holder's. Closing the
        store leaves the lock to its holder."""
        held = self.lock_holder(marketplace)
        if held is None or held.token != token or held.expires_at <= time.time():
            raise LockLostError(
                f"the run that handed this work out no longer holds the lock on {marketplace}"
            )
        renewer = Lease(self.dialect, marketplace, token, self.lease, held.expires_at)
        self._leases[marketplace] = renewer
        renewer.start()

    def _held(self, marketplace: str) -> LockHolder | None:
        """The lock's holder, its row locked until the transaction ends."""
        row = self.db.execute(
            f"SELECT {LOCK_COLUMNS} FROM locks WHERE marketplace = ?{self.dialect.for_update}", (marketplace,)
        ).fetchone()
        return None if row is None else read_holder(marketplace, row)

    def release_lock(self, marketplace: str) -> None:
        """Stop renewing and delete the lock, if it is still this run's."""
        renewer = self._leases.pop(marketplace, None)
        if renewer is None:
            return
        renewer.stop()
        self.db.execute(
            "DELETE FROM locks WHERE marketplace = ? AND token = ?",
            (marketplace, renewer.token),
            checked=False,
        )

    def lock_holder(self, marketplace: str) -> LockHolder | None:
        row = self.db.execute(
            f"SELECT {LOCK_COLUMNS} FROM locks WHERE marketplace = ?", (marketplace,)
        ).fetchone()
        return None if row is None else read_holder(marketplace, row)

    def break_lock(self, marketplace: str) -> LockHolder | None:
        """Release a lock by hand, whoever holds it (`tradepost unlock`); the holder it had, if any.

        A holder still running finds its lock gone at its next renewal and stops at its next statement.
        """
        with self.db.transaction(write=True):
            held = self._held(marketplace)
            self.db.execute("DELETE FROM locks WHERE marketplace = ?", (marketplace,))
        return held

    def _check_leases(self) -> None:
        """Before every statement: a run whose lock is lost, or whose lease ran out unrenewed (the
        process was paused, the file busy), stops before another run can be sure to hold it."""
        for renewer in self._leases.values():
            if renewer.lost is None and time.time() >= renewer.expires_at:
                renewer.lost = (
                    f"this run's lease on {renewer.lock_name} ran out at {when(renewer.expires_at)} "
                    "without being renewed (the process was paused or the state store busy); "
                    "the run stopped; run it again"
                )
            if renewer.lost:
                raise LockLostError(f"{renewer.lost} (state store {self.url})")

    def with_siblings(self, marketplace: str, sku_ids: Iterable[str]) -> set[str]:
        """These SKUs and every applied SKU of the same products: an ordered SKU's family, whose
        members a marketplace may price as one (Mercado Libre variations)."""
        wanted = set(sku_ids)
        found = set(wanted)
        for one_of, chunk in self.db.one_of(sorted(wanted)):
            rows = self.db.execute(
                "SELECT sku_id FROM listings WHERE marketplace = ? AND product_id IN "
                f"(SELECT product_id FROM listings WHERE marketplace = ? AND sku_id {one_of})",
                (marketplace, marketplace, *chunk),
            )
            found.update(str(row[0]) for row in rows)
        return found

    def sku_of_remote(self, marketplace: str, remote_id: str) -> str | None:
        """The SKU whose listing has this marketplace id (an order line naming only the listing)."""
        row = self.db.execute(
            "SELECT sku_id FROM listings WHERE marketplace = ? AND remote_id = ? "
            "UNION ALL SELECT sku_id FROM withdrawn WHERE marketplace = ? AND remote_id = ? LIMIT 1",
            (marketplace, remote_id, marketplace, remote_id),
        ).fetchone()
        return str(row[0]) if row else None

    # -- the set of SKUs seen by a plan, kept on disk so a million ids cost no memory ---------

    def record_full_pass(self, marketplace: str, kind: str, applied: int = 0, failed: int = 0) -> FullPass:
        """Remember that a full plan or apply of ``marketplace`` finished now (kept in ``meta``)."""
        done = FullPass(marketplace, kind, time.time(), applied, failed)
        value = json.dumps({"finished_at": done.finished_at, "applied": applied, "failed": failed})
        self.db.execute(_SET_META, (_pass_key(marketplace, kind), value))
        return done

    def note_full_pass(self, marketplace: str, kind: str) -> bool:
        """:meth:`record_full_pass` at once or not at all, for runs that otherwise only read (a plan).

        A read-only state file or another process writing must not fail nor delay a plan; the
        record is then skipped (logged) and False returned.
        """
        return self._at_once(
            f"full {kind} of {marketplace}", lambda: self.record_full_pass(marketplace, kind)
        )

    def _at_once(self, what: str, write: Callable[[], object]) -> bool:
        """Run ``write`` in one transaction without waiting for another writer; False (logged) when
        the store refuses."""
        self.dialect.set_wait(self.db, 0)
        try:
            with self.db.transaction():
                write()
        except StateError as exc:
            log.info("state store: the %s is not recorded: %s", what, exc)
            return False
        finally:
            self.dialect.set_wait(self.db, self.busy_timeout)
        return True

    def last_full_pass(self, marketplace: str, kind: str) -> FullPass | None:
        """The last full ``kind`` pass of ``marketplace`` recorded, or None (never, or unreadable)."""
        row = self.db.execute(
            "SELECT value FROM meta WHERE key = ?", (_pass_key(marketplace, kind),)
        ).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
            return FullPass(
                marketplace, kind, float(value["finished_at"]), int(value["applied"]), int(value["failed"])
            )
        except (ValueError, TypeError, KeyError):
            log.warning("state store: the last full %s of %s cannot be read; ignored", kind, marketplace)
            return None

    def begin_seen(self) -> None:
        self.db.executescript("CREATE TEMP TABLE IF NOT EXISTS seen (sku_id TEXT PRIMARY KEY) WITHOUT ROWID")
        self.db.execute("DELETE FROM seen")

    def add_seen(self, sku_ids: Iterable[str]) -> None:
        # One transaction per batch: in autocommit, a refilled temporary table costs 10 times as much
        # (each statement commits its pages to the temporary file).
        with self.db.transaction():
            self.db.executemany("INSERT INTO seen VALUES (?) ON CONFLICT DO NOTHING", ((s,) for s in sku_ids))

    def unseen(self, marketplace: str, among: Collection[str] | None = None) -> Iterator[AppliedListing]:
        """Applied SKUs the plan did not see: they left the catalog or the selection. With ``among``
        (a plan of some SKUs: the real-time sync's batch), only those SKUs are looked at, so a
        batch reads its own rows, never the marketplace's every listing.

        ``NOT EXISTS``, not ``NOT IN``: PostgreSQL cannot turn ``NOT IN`` into an anti-join (a null
        would change its meaning) and, once the seen SKUs outgrow its work memory, scans them again
        for every listing: a 1,000,000-SKU re-plan's query ran for over 18 minutes."""
        query = (
            f"SELECT {_COLUMNS} FROM listings WHERE marketplace = ? "
            "AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.sku_id = listings.sku_id)"
        )
        if among is None:
            rows: Iterable[Any] = self.db.stream(f"{query} ORDER BY sku_id", (marketplace,))
        else:
            rows = (
                row
                for one_of, chunk in self.db.one_of(sorted(among))
                for row in self.db.execute(
                    f"{query} AND sku_id {one_of} ORDER BY sku_id", (marketplace, *chunk)
                )
            )
        for row in rows:
            applied = self._readable(
                marketplace,
                row,
                f"it left the catalog but is not withdrawn: restore the state store from a "
                f"backup, or run `tradepost state rebuild -m {marketplace}`",
            )
            if applied is not None:
                yield applied


def _dialect(url: str, busy_timeout: float, secrets_base: Path | None) -> Dialect:
    """The database ``url`` names: PostgreSQL by URL, otherwise an SQLite file (its folder made)."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from engine.state._pg import PostgresDialect  # psycopg loads only for a PostgreSQL store
        except ImportError as exc:
            raise StateError(
                f"a PostgreSQL state store needs psycopg ({exc}); install tradepost with its dependencies"
            ) from None
        return PostgresDialect(url, busy_timeout, secrets_base)
    if "://" in url and not url.startswith("sqlite:///"):
        raise StateError(
            f"unsupported state store URL {url.split('://')[0]}://...; use a file path, sqlite:///path or "
            "postgresql://USER@HOST:PORT/DATABASE"
        )
    path = Path(url.removeprefix("sqlite:///"))
    if path.is_dir():
        raise StateError(f"state store {path} is a folder; set `state:` to a file path in the config")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(
            f"cannot create the folder of state store {path} ({exc.strerror or exc}); create it or "
            "make its parent writable by the user running tradepost"
        ) from None
    return SqliteDialect(path, busy_timeout)


def _summary(text: object) -> dict[str, Any]:
    try:
        value = json.loads(str(text))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _pass_key(marketplace: str, kind: str) -> str:
    return f"last_full_{kind}:{marketplace}"


class _BadRow(ValueError):
    """A listing row with a value that cannot be what its column holds (edited or damaged by hand)."""


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _BadRow(f"{name} is {value!r}, not a text")
    return value


def _money(name: str, value: object) -> Decimal:
    try:
        number = Decimal(value) if isinstance(value, (str, int)) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number < 0:
        raise _BadRow(f"{name} is {value!r}, not an amount")
    return number


def _listing_row(marketplace: str, row: AppliedListing, now: float) -> tuple[object, ...]:
    """A ``listings`` table row, in column order."""
    sale = None if row.sale_price is None else str(row.sale_price)
    return (
        marketplace,
        row.sku_id,
        row.product_id,
        row.content_hash,
        str(row.price),
        sale,
        row.quantity,
        row.remote_id,
        now,
        row.source_hash,
    )


def _row(row: Sequence[Any]) -> AppliedListing:
    sku_id, product_id, content_hash, price, sale_price, quantity, remote_id, source_hash = row
    if (
        type(quantity) is int
        and type(sku_id) is type(product_id) is type(content_hash) is type(price) is str
        and sku_id
        and product_id
        and content_hash
        and (remote_id is None or (type(remote_id) is str and remote_id))
        and (sale_price is None or type(sale_price) is str)
    ):
        # The row as every apply writes it, its texts and quantity checked in one test (a re-plan
        # reads the row of every line it skips); the amounts as below.
        amount = _money("price", price)
        sale = None if sale_price is None else _money("sale_price", sale_price)
        source = source_hash if type(source_hash) is str else None
        return AppliedListing(sku_id, product_id, content_hash, amount, sale, quantity, remote_id, source)
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise _BadRow(f"quantity is {quantity!r}, not a whole number")
    return AppliedListing(
        sku_id=_text("sku_id", sku_id),
        product_id=_text("product_id", product_id),
        content_hash=_text("content_hash", content_hash),
        price=_money("price", price),
        sale_price=None if sale_price is None else _money("sale_price", sale_price),
        quantity=quantity,
        remote_id=None if remote_id is None else _text("remote_id", remote_id),
        source_hash=source_hash if isinstance(source_hash, str) else None,
    )
