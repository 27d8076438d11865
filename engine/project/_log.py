"""`tradepost log`: the integration log, read from the state store, newest first.

Four sources, each what the state keeps today and no more: the runs (each apply records its
figures when it ends: :meth:`~engine.state._store.StateStore.note_run`), the SKUs whose last change
failed (one row per SKU, its latest error: an earlier error of a SKU is not kept), the records the
last plan found invalid with the rule locations of their reasons (kept by hash, not timestamped:
listed after the dated entries, as the state is now), and every order event. Errors that recur
(the same message once numbers and quoted values are set aside) are grouped with their counts.
Data only: the CLI renders it, and a dashboard can reuse :func:`integration_log`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from engine.orders._store import OrderStore
from engine.project._status import noted_reasons
from engine.state._store import StateStore

LogLevel = Literal["error", "warning", "info"]
LOG_LEVELS: tuple[LogLevel, ...] = ("error", "warning", "info")
"""From the most to the least severe: ``--level warning`` shows warnings and errors."""

_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|(?<!\w)\d+(?:[.,]\d+)*")
"""What varies between two occurrences of one error: quoted values, numbers (not those inside a
code or a name, such as TP922 or P31: the code is what makes two errors the same)."""


@dataclass(frozen=True)
class LogEntry:
    """One event: a run ended, a SKU failed or is invalid, an order moved."""

    at: float | None
    """When, or None for an invalid record (the state keeps its reasons, not when they were found)."""
    marketplace: str
    level: LogLevel
    kind: Literal["run", "sku", "invalid", "order"]
    subject: str
    """The run's kind, the SKU or the order id."""
    message: str
    location: str | None = None
    """``file:line:col`` of the rule an invalid record's reason points at."""


@dataclass(frozen=True)
class RecurringError:
    """Errors or warnings of one pattern: how many, where, and one of them."""

    pattern: str
    count: int
    marketplaces: list[str]
    sample: LogEntry


@dataclass(frozen=True)
class IntegrationLog:
    entries: list[LogEntry]
    recurring: list[RecurringError]

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": [asdict(e) for e in self.entries],
            "recurring": [asdict(r) for r in self.recurring],
        }


def integration_log(
    state: StateStore,
    names: Sequence[str],
    *,
    sku: str | None = None,
    level: LogLevel = "info",
    since: float = 0.0,
) -> IntegrationLog:
    """The log of ``names`` since ``since`` (epoch seconds) at ``level`` or above; with ``sku``,
    only that SKU's entries (runs and orders are not any one SKU's)."""
    orders = OrderStore(state)
    entries = [
        entry
        for name in names
        for entry in _entries(state, orders, name, since)
        if _at_least(entry.level, level) and (sku is None or _about(entry, sku))
    ]
    entries.sort(key=lambda e: (e.at is None, -(e.at or 0.0)))
    return IntegrationLog(entries, recurring_errors(entries))


def recurring_errors(entries: Iterable[LogEntry]) -> list[RecurringError]:
    """Errors and warnings seen more than once, by pattern (numbers and quoted values set aside),
    the commonest first."""
    groups: dict[str, list[LogEntry]] = {}
    for entry in entries:
        if entry.level != "info":
            groups.setdefault(pattern_of(entry.message), []).append(entry)
    recurring = [
        RecurringError(pattern, len(found), sorted({e.marketplace for e in found}), found[0])
        for pattern, found in groups.items()
        if len(found) > 1
    ]
    return sorted(recurring, key=lambda r: (-r.count, r.pattern))


def pattern_of(message: str) -> str:
    """The message with what varies from one SKU or order to the next (numbers, quoted values)
    replaced by ``…``: two errors with the same pattern (code and message) are the same error."""
    return _VARYING.sub("…", message)


def _about(entry: LogEntry, sku: str) -> bool:
    return entry.kind in ("sku", "invalid") and entry.subject == sku


def _at_least(found: LogLevel, wanted: LogLevel) -> bool:
    return LOG_LEVELS.index(found) <= LOG_LEVELS.index(wanted)


def _entries(state: StateStore, orders: OrderStore, name: str, since: float) -> Iterator[LogEntry]:
    for kind, _, finished, figures in state.runs(name, since):
        failed = int(figures.get("failed", 0) or 0)
        yield LogEntry(finished, name, "warning" if failed else "info", "run", kind, _run_line(kind, figures))
    for sku_id, reason, at in state.error_rows(name, since):
        yield LogEntry(at, name, "error", "sku", sku_id, reason)
    for sku_id, text in state.invalid_reasons(name):
        yield from _invalid(name, sku_id, text)
    for order_id, at, event, detail in orders.events_since(name, since):
        message = event + (f": {detail}" if detail else "")
        yield LogEntry(at, name, "error" if event == "error" else "info", "order", order_id, message)


def _run_line(kind: str, figures: dict[str, Any]) -> str:
    return (
        f"{kind}: {figures.get('applied', 0)} applied, {figures.get('failed', 0)} failed, "
        f"{figures.get('skipped', 0)} already applied ({figures.get('requests', 0)} requests, "
        f"{figures.get('seconds', 0)}s)"
    )


def _invalid(name: str, sku_id: str, text: str) -> Iterator[LogEntry]:
    """One warning per reason of an invalid record, with its rule location."""
    for code, _, message, location in noted_reasons(text):
        yield LogEntry(None, name, "warning", "invalid", sku_id, f"{code} {message}", location)
