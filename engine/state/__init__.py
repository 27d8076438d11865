"""The state store: what Tradepost believes each marketplace holds, under per-marketplace leases.

One store, two databases: an SQLite file by default, PostgreSQL by URL (where several workers and
hosts share it, and one rate limit per seller account). The same contract holds on both.

It also keeps the queue of SKUs a change notification named (:class:`NotificationQueue`) until
every marketplace has its outcome. The listings are a cache of the marketplaces, never the
truth: :func:`engine.project.rebuild_state` reads them back from them. The marketplaces' own
status of the listings, as last read, is :class:`ListingStatuses`. :func:`migrate_state`
moves a whole store into another database (``tradepost state migrate``: SQLite into PostgreSQL).
"""

from __future__ import annotations

from engine.state._liststatus import ListingStatuses, StatusReason
from engine.state._migrate import Migration, migrate_state, open_source
from engine.state._queue import WORK_LEASE, Change, NotificationQueue, QueueCounts, QueuedSku
from engine.state._store import FullPass, StateStore

__all__ = [
    "WORK_LEASE",
    "Change",
    "FullPass",
    "ListingStatuses",
    "Migration",
    "NotificationQueue",
    "QueueCounts",
    "QueuedSku",
    "StateStore",
    "StatusReason",
    "migrate_state",
    "open_source",
]
