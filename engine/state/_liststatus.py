"""The marketplace's own status of our listings, as last read: the ``listing_status`` table.

One row per (marketplace, SKU): the status in Tradepost's vocabulary
(:data:`~engine.connectors.LISTING_STATES`), the marketplace's code and reason, and when it was
read. A full refresh (``tradepost status --refresh``) replaces a marketplace's rows in one
transaction, so the table never mixes two refreshes' views of one marketplace and a SKU no longer
listed leaves with the next one; :meth:`ListingStatuses.record` upserts a few rows read as a
by-product of other work. The table lives in the state store's database (SQLite or PostgreSQL,
created with the store's own tables, as the queue's) and is copied by ``tradepost state migrate``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.connectors._liststatus import ListingStatus
from engine.state._db import replace_into

if TYPE_CHECKING:
    from engine.state._store import StateStore

LISTING_STATUS_SCHEMA = """
CREATE TABLE IF NOT EXISTS listing_status (
    marketplace TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    status TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    checked_at REAL NOT NULL,
    PRIMARY KEY (marketplace, sku_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS listing_status_by_status ON listing_status (marketplace, status, code);
"""
"""The table, created with the store's own (no schema version: a table an older Tradepost ignores)."""

_LIVE = "EXISTS (SELECT 1 FROM listings l WHERE l.marketplace = s.marketplace AND l.sku_id = s.sku_id)"
"""Counted only while the SKU is live by the state: one withdrawn since the refresh (or refused
after acceptance, then ``failing``) no longer counts under the status read before."""
_COLUMNS = ("marketplace", "sku_id", "status", "code", "reason", "checked_at")
_UPSERT = replace_into("listing_status", _COLUMNS, ("marketplace", "sku_id"))
_INSERT = f"INSERT INTO listing_status ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


@dataclass(frozen=True)
class StatusReason:
    """One (status, code) of a marketplace's listings: how many, one SKU and its reason."""

    status: str
    code: str
    count: int
    sample_sku: str
    reason: str


class ListingStatuses:
    """The ``listing_status`` table of a :class:`StateStore` (same database, same connection)."""

    def __init__(self, state: StateStore) -> None:
        self.db = state.db

    def replace(
        self, marketplace: str, statuses: Iterable[ListingStatus], checked_at: float | None = None
    ) -> int:
        """A full refresh: the marketplace's rows become ``statuses`` (stamped ``checked_at``,
        default now), in one transaction; how many were written."""
        now = time.time() if checked_at is None else checked_at
        rows = [_row(marketplace, status, now) for status in statuses]
        with self.db.transaction(write=True):
            self.db.execute("DELETE FROM listing_status WHERE marketplace = ?", (marketplace,))
            if rows:
                self.db.executemany(_INSERT, rows)
        return len(rows)

    def record(self, marketplace: str, statuses: Iterable[ListingStatus]) -> None:
        """Upsert a few statuses read as a by-product (each keeps its own ``checked_at``, or now)."""
        now = time.time()
        rows = [_row(marketplace, status, status.checked_at or now) for status in statuses]
        if rows:
            with self.db.transaction(write=True):
                self.db.executemany(_UPSERT, rows)

    def counts(self, marketplace: str) -> dict[str, int]:
        """Status -> SKUs in it, among those still live (:data:`_LIVE`)."""
        return {
            str(status): int(count)
            for status, count in self.db.execute(
                f"SELECT status, count(*) FROM listing_status s WHERE s.marketplace = ? AND {_LIVE} "
                "GROUP BY status",
                (marketplace,),
            )
        }

    def last_checked(self, marketplace: str) -> float | None:
        """When the marketplace's statuses were last read (None: never)."""
        row = self.db.execute(
            "SELECT max(checked_at) FROM listing_status WHERE marketplace = ?", (marketplace,)
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def reasons(self, marketplace: str, statuses: Sequence[str], top: int) -> list[StatusReason]:
        """The ``top`` (status, code) pairs among ``statuses``: in the order ``statuses`` gives (the
        most pressing first), then the commonest; each with its first SKU and that SKU's reason."""
        if not statuses:
            return []
        grouped = self.db.execute(
            "SELECT status, code, count(*), min(sku_id) FROM listing_status s "
            f"WHERE s.marketplace = ? AND {_LIVE} AND status IN ({', '.join('?' * len(statuses))}) "
            "GROUP BY status, code",
            (marketplace, *statuses),
        ).fetchall()
        rank = {status: n for n, status in enumerate(statuses)}
        grouped.sort(key=lambda row: (rank[str(row[0])], -int(row[2]), str(row[1])))
        found = []
        for status, code, count, sku_id in grouped[:top]:
            (reason,) = self.db.execute(
                "SELECT reason FROM listing_status WHERE marketplace = ? AND sku_id = ?",
                (marketplace, sku_id),
            ).fetchone()
            found.append(StatusReason(str(status), str(code), int(count), str(sku_id), str(reason)))
        return found

    def of(self, marketplace: str, sku_id: str) -> ListingStatus | None:
        """One SKU's status as last read."""
        row = self.db.execute(
            "SELECT sku_id, status, code, reason, checked_at FROM listing_status "
            "WHERE marketplace = ? AND sku_id = ?",
            (marketplace, sku_id),
        ).fetchone()
        if row is None:
            return None
        return ListingStatus(str(row[0]), row[1], str(row[2]), str(row[3]), float(row[4]))


def _row(marketplace: str, status: ListingStatus, checked_at: float) -> tuple[object, ...]:
    return (marketplace, status.sku_id, status.status, status.code, status.reason, checked_at)
