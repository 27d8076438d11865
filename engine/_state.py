"""The state store: what was last applied to each marketplace, per SKU.

SQLite by default (zero setup, one file next to the project). The diff only
needs, per SKU, the hash of the listing's content and the price and quantity
last sent, so rows stay small and a million SKUs fit in a few hundred MB of
disk and no memory: the plan looks rows up in batches as the catalog streams.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from engine._diagnostics import TradepostError
from engine._listing import Listing

SCHEMA_VERSION = 1

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
CREATE TABLE IF NOT EXISTS inflight (
    marketplace TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS withdrawn (
    marketplace TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locks (
    marketplace TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sku_errors (
    marketplace TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    run_id INTEGER,
    reasons TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
"""


_COLUMNS = "sku_id, product_id, content_hash, price, sale_price, quantity, remote_id"
_UPSERT = (
    "INSERT INTO listings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (marketplace, sku_id) DO UPDATE SET "
    "product_id = excluded.product_id, content_hash = excluded.content_hash, price = excluded.price, "
    "sale_price = excluded.sale_price, quantity = excluded.quantity, "
    "remote_id = coalesce(excluded.remote_id, listings.remote_id), applied_at = excluded.applied_at"
)


class StateError(TradepostError):
    """The state store cannot be opened or is of an unknown version."""


class LockedError(TradepostError):
    """Another run holds the marketplace's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def applied_from(listing: Listing, remote_id: str | None = None) -> AppliedListing:
    """The state row recording that ``listing`` was applied as it is."""
    return AppliedListing(
        listing.sku_id,
        listing.product_id,
        listing.content_hash(),
        listing.price,
        listing.sale_price,
        listing.quantity,
        remote_id,
    )


class StateStore:
    """SQLite-backed state; one instance per process, used from one thread."""

    def __init__(self, url: str | Path) -> None:
        self.url = str(url)
        path = Path(self.url.removeprefix("sqlite:///"))
        if "://" in self.url and not self.url.startswith("sqlite:///"):
            raise StateError(f"unsupported state store URL {self.url!r}; use a file path or sqlite:///path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"cannot open state store {path}: {exc}") from None
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise StateError(f"state store {path} is of a newer version ({row[0]}); upgrade tradepost")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------------

    def get_many(self, marketplace: str, sku_ids: Sequence[str]) -> dict[str, AppliedListing]:
        """Applied rows for these SKUs (missing ones are absent from the result)."""
        found: dict[str, AppliedListing] = {}
        for start in range(0, len(sku_ids), 500):
            chunk = sku_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM listings WHERE marketplace = ? AND sku_id IN ({marks})",
                (marketplace, *chunk),
            )
            for row in rows:
                found[row[0]] = _row(row)
        return found

    def all_sku_ids(self, marketplace: str) -> Iterator[str]:
        for (sku_id,) in self.db.execute(
            "SELECT sku_id FROM listings WHERE marketplace = ? ORDER BY sku_id", (marketplace,)
        ):
            yield sku_id

    def get(self, marketplace: str, sku_id: str) -> AppliedListing | None:
        return self.get_many(marketplace, [sku_id]).get(sku_id)

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
        return f"{row[0]}:{row[1]:.6f}"

    # -- writes ------------------------------------------------------------------------------

    def record_applied(self, marketplace: str, rows: Iterable[AppliedListing]) -> None:
        now = time.time()
        rows = list(rows)
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "DELETE FROM withdrawn WHERE marketplace = ? AND sku_id = ?",
                [(marketplace, r.sku_id) for r in rows],
            )
            self.db.executemany(
                _UPSERT,
                [
                    (
                        marketplace,
                        r.sku_id,
                        r.product_id,
                        r.content_hash,
                        str(r.price),
                        None if r.sale_price is None else str(r.sale_price),
                        r.quantity,
                        r.remote_id,
                        now,
                    )
                    for r in rows
                ],
            )

    def record_deleted(self, marketplace: str, sku_ids: Iterable[str]) -> None:
        """Forget the listing, but keep the marketplace's id: a SKU selected again reuses it."""
        keys = [(marketplace, s) for s in sku_ids]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO withdrawn SELECT marketplace, sku_id, remote_id FROM listings "
                "WHERE marketplace = ? AND sku_id = ? AND remote_id IS NOT NULL",
                keys,
            )
            self.db.executemany("DELETE FROM listings WHERE marketplace = ? AND sku_id = ?", keys)

    def replace_marketplace(
        self, marketplace: str, rows: Iterable[AppliedListing], withdrawn: Mapping[str, str]
    ) -> None:
        """Make ``rows`` (and ``withdrawn``: SKU -> remote id) the marketplace's whole state, in one
        transaction: a rebuild read back from the marketplace. Other marketplaces' rows, and this
        one's runs, locks and errors, are left as they are; submissions still to confirm are
        dropped, since what was read back already shows their outcome."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for table in ("listings", "withdrawn", "pending"):
                self.db.execute(f"DELETE FROM {table} WHERE marketplace = ?", (marketplace,))
            self.db.executemany(
                "INSERT INTO listings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        marketplace,
                        r.sku_id,
                        r.product_id,
                        r.content_hash,
                        str(r.price),
                        None if r.sale_price is None else str(r.sale_price),
                        r.quantity,
                        r.remote_id,
                        now,
                    )
                    for r in rows
                ),
            )
            self.db.executemany(
                "INSERT INTO withdrawn VALUES (?, ?, ?)",
                ((marketplace, sku_id, remote_id) for sku_id, remote_id in withdrawn.items()),
            )

    def withdrawn_remote_id(self, marketplace: str, sku_id: str) -> str | None:
        """The marketplace's id of a SKU withdrawn earlier (for a listing it can bring back)."""
        row = self.db.execute(
            "SELECT remote_id FROM withdrawn WHERE marketplace = ? AND sku_id = ?", (marketplace, sku_id)
        ).fetchone()
        return None if row is None else str(row[0])

    # -- outcomes still to confirm, per-SKU errors ---------------------------------------------

    def record_pending(self, marketplace: str, sku_id: str, token: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?)", (marketplace, sku_id, token, time.time())
        )

    def clear_pending(self, marketplace: str, sku_id: str) -> None:
        self.db.execute("DELETE FROM pending WHERE marketplace = ? AND sku_id = ?", (marketplace, sku_id))

    def pending(self, marketplace: str) -> dict[str, str]:
        rows = self.db.execute("SELECT sku_id, token FROM pending WHERE marketplace = ?", (marketplace,))
        return {str(sku_id): str(token) for sku_id, token in rows}

    def record_inflight(self, marketplace: str, sku_id: str) -> None:
        """A request that is not safe to repeat is about to go: if the run dies now, look first."""
        self.db.execute(
            "INSERT OR REPLACE INTO inflight VALUES (?, ?, ?)", (marketplace, sku_id, time.time())
        )

    def clear_inflight(self, marketplace: str, sku_id: str) -> None:
        self.db.execute("DELETE FROM inflight WHERE marketplace = ? AND sku_id = ?", (marketplace, sku_id))

    def is_inflight(self, marketplace: str, sku_id: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM inflight WHERE marketplace = ? AND sku_id = ?", (marketplace, sku_id)
        ).fetchone()
        return row is not None

    def record_error(self, marketplace: str, sku_id: str, reason: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO sku_errors VALUES (?, ?, NULL, ?, ?)",
            (marketplace, sku_id, reason, time.time()),
        )

    def clear_error(self, marketplace: str, sku_id: str) -> None:
        self.db.execute("DELETE FROM sku_errors WHERE marketplace = ? AND sku_id = ?", (marketplace, sku_id))

    def errors(self, marketplace: str) -> dict[str, str]:
        rows = self.db.execute("SELECT sku_id, reasons FROM sku_errors WHERE marketplace = ?", (marketplace,))
        return {str(sku_id): str(reason) for sku_id, reason in rows}

    # -- one run per marketplace at a time -----------------------------------------------------

    def acquire_lock(self, marketplace: str, holder: str) -> None:
        """Take the marketplace's lock, or raise :class:`LockedError` naming who holds it.

        A lock whose process is gone (same host, pid not running) is taken over: a run killed
        with SIGKILL must not block every later one.
        """
        host, pid = socket.gethostname(), os.getpid()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute(
                "SELECT holder, pid, host, acquired_at FROM locks WHERE marketplace = ?", (marketplace,)
            ).fetchone()
            if row is not None and not (row[2] == host and not _alive(int(row[1]))):
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(row[3])))
                raise LockedError(
                    f"{marketplace} is locked by {row[0]} (pid {row[1]} on {row[2]}, since {since}); "
                    "another run is in progress"
                )
            self.db.execute(
                "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?)",
                (marketplace, holder, pid, host, time.time()),
            )

    def with_siblings(self, marketplace: str, sku_ids: Iterable[str]) -> set[str]:
        """These SKUs and every applied SKU of the same products: an ordered SKU's family, whose
        members a marketplace may price as one (Mercado Libre variations)."""
        wanted = set(sku_ids)
        found = set(wanted)
        ids = sorted(wanted)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT sku_id FROM listings WHERE marketplace = ? AND product_id IN "
                f"(SELECT product_id FROM listings WHERE marketplace = ? AND sku_id IN ({marks}))",
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

    def release_lock(self, marketplace: str) -> None:
        self.db.execute("DELETE FROM locks WHERE marketplace = ? AND pid = ?", (marketplace, os.getpid()))

    # -- the set of SKUs seen by a plan, kept on disk so a million ids cost no memory ---------

    def begin_seen(self) -> None:
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (sku_id TEXT PRIMARY KEY) WITHOUT ROWID")
        self.db.execute("DELETE FROM temp.seen")

    def add_seen(self, sku_ids: Iterable[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO temp.seen VALUES (?)", ((s,) for s in sku_ids))

    def unseen(self, marketplace: str) -> Iterator[AppliedListing]:
        """Applied SKUs the plan did not see: they left the catalog or the selection."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM listings "
            "WHERE marketplace = ? AND sku_id NOT IN (SELECT sku_id FROM temp.seen) ORDER BY sku_id",
            (marketplace,),
        )
        for row in rows:
            yield _row(row)


def _row(row: tuple[object, ...]) -> AppliedListing:
    return AppliedListing(
        sku_id=str(row[0]),
        product_id=str(row[1]),
        content_hash=str(row[2]),
        price=Decimal(str(row[3])),
        sale_price=None if row[4] is None else Decimal(str(row[4])),
        quantity=int(str(row[5])),
        remote_id=None if row[6] is None else str(row[6]),
    )
