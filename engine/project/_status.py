"""`tradepost status`: each marketplace at a glance, read from the state store alone.

The figures are data (:class:`ProjectStatus`), never printed here: the CLI renders them, and a
report or a dashboard reuses the same functions (:func:`marketplace_status`,
:func:`invalid_by_reason`). Nothing is asked of a marketplace here: the marketplace's own status
of our listings is what the last ``tradepost status --refresh`` recorded
(:mod:`engine.project._liststatus`), with its age; never read, it is said to be not recorded.

A marketplace *needs a person* when a figure passes the config's ``status:`` thresholds
(:class:`~engine.project._config.StatusConfig`): SKUs failing, listings the marketplace rejected,
an order held too long, the reconciliation too old; the project does when the oldest queued
notification waits too long. Each problem is one sentence in :attr:`ProjectStatus.problems`;
none means healthy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.connectors._liststatus import LISTING_STATES, NEEDS_ACTION
from engine.orders._store import OrderStore
from engine.project._config import Project, StatusConfig
from engine.state._liststatus import ListingStatuses, StatusReason
from engine.state._queue import NotificationQueue, QueueCounts
from engine.state._store import FullPass, LockHolder, StateStore

TOP_REASONS = 10
"""Invalid reason codes shown per marketplace, the commonest first."""
LAST_ERRORS = 5
"""Failing SKUs shown per marketplace with their error, the newest first."""
NOT_RECORDED = "not recorded"
"""The marketplace's own status of our listings, before any `tradepost status --refresh` read it."""
TOP_STATUS_REASONS = 10
"""(status, code) pairs of the listings not active shown per marketplace: rejected first, then
paused, under review, unknown, inactive; the commonest first within each."""


@dataclass(frozen=True)
class FailingSku:
    """A SKU whose last change the marketplace refused or that failed to send, and why."""

    sku_id: str
    error: str
    recorded_at: float


@dataclass(frozen=True)
class InvalidReason:
    """One reason code of the records a plan found invalid: how many SKUs, and one of them."""

    code: str
    count: int
    sample_sku: str
    message: str
    rule: str
    location: str | None
    """``file:line:col`` of the rule the sample's reason points at, when it has one."""


@dataclass(frozen=True)
class MarketplaceStatus:
    """One marketplace as the state store knows it now."""

    name: str
    live: int
    failing: int
    last_errors: list[FailingSku]
    invalid: int
    invalid_reasons: list[InvalidReason]
    last_full_apply: FullPass | None
    last_full_plan: FullPass | None
    orders: dict[str, int]
    oldest_held_at: float | None
    lock: LockHolder | None
    problems: list[str] = field(default_factory=list)
    listing_statuses: dict[str, int] = field(default_factory=dict)
    """The marketplace's own status of our listings, as last read: status -> listings."""
    status_reasons: list[StatusReason] = field(default_factory=list)
    """The commonest reasons of the listings not active, each with a sample SKU."""
    statuses_checked_at: float | None = None

    @property
    def held(self) -> int:
        return self.orders.get("held", 0)

    @property
    def rejected(self) -> int:
        return sum(n for status, n in self.listing_statuses.items() if status in NEEDS_ACTION)

    @property
    def remote_status(self) -> str:
        """The marketplace's own status of our listings in a phrase: the counts, or not recorded."""
        if self.statuses_checked_at is None:
            return NOT_RECORDED
        counts = self.listing_statuses
        return ", ".join(f"{s} {counts[s]}" for s in LISTING_STATES if counts.get(s)) or "no listings"

    def _statuses_dict(self, now: float) -> dict[str, Any] | None:
        if self.statuses_checked_at is None:
            return None
        return {
            "checked_at": self.statuses_checked_at,
            "age_seconds": _age(self.statuses_checked_at, now),
            "counts": {s: self.listing_statuses[s] for s in LISTING_STATES if s in self.listing_statuses},
            "reasons": [asdict(r) for r in self.status_reasons],
        }

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "listings_live": self.live,
            "failing": self.failing,
            "last_errors": [asdict(e) for e in self.last_errors],
            "invalid": self.invalid,
            "invalid_by_reason": [asdict(r) for r in self.invalid_reasons],
            "marketplace_status": self.remote_status,
            "listing_statuses": self._statuses_dict(now),
            "last_full_apply": None if self.last_full_apply is None else self.last_full_apply.to_dict(),
            "last_full_plan": None if self.last_full_plan is None else self.last_full_plan.to_dict(),
            "orders": dict(sorted(self.orders.items())),
            "held_orders": self.held,
            "oldest_held_age_seconds": _age(self.oldest_held_at, now),
            "lock": None if self.lock is None else _lock_dict(self.lock),
            "problems": self.problems,
        }


@dataclass(frozen=True)
class ProjectStatus:
    """Every marketplace's status, the notification queue, and what needs a person."""

    at: float
    notifications: QueueCounts
    marketplaces: list[MarketplaceStatus]
    queue_problems: list[str]

    @property
    def problems(self) -> list[str]:
        """Every threshold passed, each a sentence naming its marketplace or the queue."""
        return [*self.queue_problems, *(f"{m.name}: {p}" for m in self.marketplaces for p in m.problems)]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        notifications: dict[str, Any] = {
            **self.notifications.to_dict(),
            "oldest_age_seconds": _age(self.notifications.oldest_received_at, self.at),
        }
        return {
            "healthy": self.healthy,
            "problems": self.problems,
            "notifications": notifications,
            "marketplaces": {m.name: m.to_dict(self.at) for m in self.marketplaces},
        }


def project_status(
    project: Project, state: StateStore, names: Sequence[str] | None = None, now: float | None = None
) -> ProjectStatus:
    """The status of ``names`` (default: every marketplace of the config), judged by its thresholds."""
    now = time.time() if now is None else now
    limits = project.config.status
    orders = OrderStore(state)
    with NotificationQueue(state) as queue:
        counts = queue.counts()
    marketplaces = [
        marketplace_status(state, orders, name, limits, now)
        for name in (names if names is not None else project.marketplace_names())
    ]
    return ProjectStatus(now, counts, marketplaces, _queue_problems(counts, limits, now))


def marketplace_status(
    state: StateStore, orders: OrderStore, name: str, limits: StatusConfig, now: float
) -> MarketplaceStatus:
    """One marketplace's figures and the thresholds they pass."""
    errors = state.error_rows(name)
    invalid, reasons = invalid_by_reason(state.invalid_reasons(name))
    held = next(iter(orders.select([name], ["held"])), None)
    status = MarketplaceStatus(
        name=name,
        live=state.count(name),
        failing=len(errors),
        last_errors=[FailingSku(*row) for row in errors[:LAST_ERRORS]],
        invalid=invalid,
        invalid_reasons=reasons,
        last_full_apply=state.last_full_pass(name, "apply"),
        last_full_plan=state.last_full_pass(name, "plan"),
        orders=orders.counts(name),
        oldest_held_at=None if held is None else held.received_at,
        lock=state.lock_holder(name),
        **_listing_statuses(state, name),
    )
    status.problems.extend(_problems(status, limits, now))
    return status


def _listing_statuses(state: StateStore, name: str) -> dict[str, Any]:
    """The marketplace's own status of our listings, as the last refresh recorded it."""
    table = ListingStatuses(state)
    pressing = ["rejected", "paused", "under_review", "unknown", "inactive"]
    return {
        "listing_statuses": table.counts(name),
        "status_reasons": table.reasons(name, pressing, TOP_STATUS_REASONS),
        "statuses_checked_at": table.last_checked(name),
    }


def invalid_by_reason(
    noted: Iterable[tuple[str, str]], top: int = TOP_REASONS
) -> tuple[int, list[InvalidReason]]:
    """How many SKUs are invalid, and the ``top`` reason codes by SKUs, each with its first SKU;
    ``noted`` is (SKU, reasons as the plan keeps them: ``[where, [[code, rule, message, span]]]``)."""
    skus = 0
    counts: dict[str, int] = {}
    first: dict[str, InvalidReason] = {}
    for sku_id, text in noted:
        skus += 1
        for reason in _reasons(sku_id, text):
            counts[reason.code] = counts.get(reason.code, 0) + 1
            first.setdefault(reason.code, reason)
    ranked = sorted(counts, key=lambda code: (-counts[code], code))[:top]
    return skus, [_counted(first[code], counts[code]) for code in ranked]


def _reasons(sku_id: str, text: str) -> list[InvalidReason]:
    """The distinct codes of one SKU's reasons, each with its first reason."""
    found: dict[str, InvalidReason] = {}
    for code, rule, message, location in noted_reasons(text):
        found.setdefault(code, InvalidReason(code, 1, sku_id, message, rule, location))
    return list(found.values())


def noted_reasons(text: str) -> list[tuple[str, str, str, str | None]]:
    """(code, rule, message, ``file:line:col`` or None) of each reason of an invalid record as a
    plan keeps them (``[where, [[code, rule, message, span]]]``); one ``UNREADABLE`` when the row
    is not what a plan wrote."""
    try:
        _, listed = json.loads(text)
        return [(str(code), str(rule), str(message), _location(span)) for code, rule, message, span in listed]
    except (ValueError, TypeError):
        return [("UNREADABLE", "", "the reasons noted cannot be read", None)]


def _location(span: object) -> str | None:
    if not isinstance(span, list) or len(span) < 3:
        return None
    return f"{span[0]}:{span[1]}:{span[2]}"


def _counted(reason: InvalidReason, count: int) -> InvalidReason:
    return InvalidReason(reason.code, count, reason.sample_sku, reason.message, reason.rule, reason.location)


def _problems(status: MarketplaceStatus, limits: StatusConfig, now: float) -> Iterable[str]:
    """What needs a person in one marketplace, by the config's thresholds."""
    if status.failing > limits.max_failing:
        yield f"{status.failing} SKU(s) failing (more than {limits.max_failing})"
    if status.rejected > limits.max_rejected:
        yield (
            f"{status.rejected} listing(s) rejected by the marketplace (more than {limits.max_rejected}): "
            "see the reasons, correct the rules or the catalog, and apply"
        )
    held_hours = (_age(status.oldest_held_at, now) or 0.0) / 3600
    if held_hours > limits.max_held_order_hours:
        yield f"an order held {held_hours:.1f} h (more than {limits.max_held_order_hours:g} h)"
    applied = status.last_full_apply
    if applied is None and status.live:
        yield "never reconciled by a full apply (`tradepost apply` without a saved plan)"
    elif applied is not None and (now - applied.finished_at) / 3600 > limits.max_full_pass_age_hours:
        yield (
            f"last full apply {(now - applied.finished_at) / 3600:.1f} h ago "
            f"(more than {limits.max_full_pass_age_hours:g} h)"
        )


def _queue_problems(counts: QueueCounts, limits: StatusConfig, now: float) -> list[str]:
    minutes = (_age(counts.oldest_received_at, now) or 0.0) / 60
    if minutes > limits.max_queue_age_minutes:
        return [
            f"notifications: the oldest queued waits {minutes:.0f} min "
            f"(more than {limits.max_queue_age_minutes:g} min): is `tradepost sync` running?"
        ]
    return []


def _age(at: float | None, now: float) -> float | None:
    return None if at is None else max(0.0, now - at)


def _lock_dict(lock: LockHolder) -> dict[str, Any]:
    return {
        "holder": lock.holder,
        "pid": lock.pid,
        "host": lock.host,
        "acquired_at": lock.acquired_at,
        "expires_at": lock.expires_at,
    }
