"""Orders in the state store: the order state machine's memory.

Every marketplace order the engine has seen is one row keyed by
``(marketplace, order_id)``, inserted with ``ON CONFLICT DO NOTHING`` so the same
order delivered twice (an overlapping pull, a notification and a poll) is one
row. Each state change is a compare-and-set (``UPDATE … WHERE state IN …``)
committed with its history event in one transaction: a run killed at any
instant leaves every order in a state it really reached, and the next run
takes it from there.

States (``tradepost orders list`` shows them)::

    held ──approve──► approved ──place in VTEX──► placed ──authorize dispatch──► ready
     │                   │                          │                             │
     └──reject──► rejected ──cancel on marketplace──► cancelled ◄── VTEX or marketplace cancel
                                                                                   │
                               VTEX invoice + tracking confirmed on marketplace ──► shipped
    a cancellation that arrives after VTEX invoiced (or the marketplace shipped) ──► returned

Personal data (buyer, address) is stored only while the order still needs to
be placed in VTEX or cancelled; it is erased when the order reaches a final
state (``shipped``, ``cancelled``, ``returned``).

The tables share the state store's connection (SQLite or PostgreSQL: the
compare-and-set holds on both, since an ``UPDATE`` re-reads the row it waited
for), so a damaged, read-only or busy store is a
:class:`~engine.state._store.StateError` naming it. An order row that
cannot be read (garbage in its JSON, an unknown state) is an error too, naming
the order, never skipped: the row is the only record of whether the order was
placed in VTEX or cancelled, and guessing could place or cancel it twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from engine.model._order import Buyer, Order
from engine.state._store import StateError, StateStore

__all__ = ["FINAL", "OPEN", "OrderState", "OrderStore", "StoredOrder"]

OrderState = Literal["held", "approved", "rejected", "placed", "ready", "shipped", "cancelled", "returned"]
STATES: tuple[OrderState, ...] = (
    "held",
    "approved",
    "rejected",
    "placed",
    "ready",
    "shipped",
    "cancelled",
    "returned",
)
FINAL: tuple[OrderState, ...] = ("shipped", "cancelled", "returned")
OPEN: tuple[OrderState, ...] = ("held", "approved", "rejected", "placed", "ready")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    marketplace TEXT NOT NULL,
    order_id TEXT NOT NULL,
    state TEXT NOT NULL,
    decision TEXT NOT NULL,
    order_json TEXT NOT NULL,
    marketplace_status TEXT NOT NULL,
    payment_status TEXT NOT NULL,
    vtex_order_id TEXT,
    note TEXT,
    error TEXT,
    error_retryable INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (marketplace, order_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS orders_by_state ON orders (state, marketplace);
CREATE TABLE IF NOT EXISTS order_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    marketplace TEXT NOT NULL,
    order_id TEXT NOT NULL,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS order_events_by_order ON order_events (marketplace, order_id);
CREATE TABLE IF NOT EXISTS order_shipments (
    marketplace TEXT NOT NULL,
    order_id TEXT NOT NULL,
    invoice_number TEXT NOT NULL,
    items TEXT NOT NULL,
    confirmed_at REAL NOT NULL,
    PRIMARY KEY (marketplace, order_id, invoice_number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS order_cursors (marketplace TEXT PRIMARY KEY, since TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS unreadable_orders (
    marketplace TEXT NOT NULL,
    order_id TEXT NOT NULL,
    message TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (marketplace, order_id)
) WITHOUT ROWID;
"""

_COLUMNS = (
    "marketplace, order_id, state, decision, order_json, marketplace_status, payment_status, "
    "vtex_order_id, note, error, error_retryable, attempts, received_at, updated_at"
)


@dataclass(frozen=True)
class StoredOrder:
    """One order as the state store holds it."""

    marketplace: str
    order_id: str
    state: OrderState
    decision: dict[str, Any]
    order: Order
    marketplace_status: str
    payment_status: str
    vtex_order_id: str | None
    note: str | None
    error: str | None
    error_retryable: bool | None
    attempts: int
    received_at: float
    updated_at: float

    @property
    def cancelled_on_marketplace(self) -> bool:
        return self.marketplace_status == "cancelled"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for ``--json`` output: no personal data (the order's safe dump)."""
        return {
            "marketplace": self.marketplace,
            "order_id": self.order_id,
            "state": self.state,
            "vtex_order_id": self.vtex_order_id,
            "marketplace_status": self.marketplace_status,
            "payment_status": self.payment_status,
            "decision": self.decision,
            "note": self.note,
            "error": self.error,
            "error_retryable": self.error_retryable,
            "attempts": self.attempts,
            "received_at": _iso(self.received_at),
            "updated_at": _iso(self.updated_at),
            "order": self.order.model_dump_safe(),
        }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class OrderStore:
    """The order tables of a :class:`StateStore` (same database, same connection)."""

    def __init__(self, state: StateStore) -> None:
        self.db = state.db
        self.where = state.url
        with self.db.schema():
            self.db.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One transaction: the connection autocommits, so a multi-statement change must begin one."""
        with self.db.transaction(write=True):
            yield

    # -- reading -----------------------------------------------------------------------------

    def _stored(self, row: tuple[Any, ...]) -> StoredOrder:
        try:
            return _stored(row)
        except (ValidationError, ValueError, TypeError, KeyError) as exc:
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                why = f"order_json: {where + ': ' if where else ''}{first['msg']}"
            else:
                why = str(exc) or type(exc).__name__
            raise StateError(
                f"state store {self.where}: {row[0]} order {row[1]} cannot be read ({why}); restore the "
                "state store from a backup. Tradepost does not guess an order's state: it could place or "
                "cancel it twice"
            ) from None

    def get(self, marketplace: str, order_id: str) -> StoredOrder | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM orders WHERE marketplace = ? AND order_id = ?", (marketplace, order_id)
        ).fetchone()
        return self._stored(row) if row else None

    def find(self, order_id: str, marketplace: str | None = None) -> list[StoredOrder]:
        """Orders with this marketplace order id or VTEX order id (several marketplaces may share one)."""
        query = f"SELECT {_COLUMNS} FROM orders WHERE (order_id = ? OR vtex_order_id = ?)"
        params: list[Any] = [order_id, order_id]
        if marketplace:
            query += " AND marketplace = ?"
            params.append(marketplace)
        return [self._stored(row) for row in self.db.execute(query, params)]

    def select(
        self, marketplaces: Iterable[str] | None = None, states: Iterable[str] | None = None
    ) -> Iterator[StoredOrder]:
        """Orders oldest first, optionally only some marketplaces and states."""
        query = f"SELECT {_COLUMNS} FROM orders WHERE 1 = 1"
        params: list[Any] = []
        for column, values in (("marketplace", marketplaces), ("state", states)):
            if values is not None:
                chosen = list(values)
                query += f" AND {column} IN ({', '.join('?' * len(chosen))})" if chosen else " AND 1 = 0"
                params += chosen
        query += " ORDER BY received_at, marketplace, order_id"
        for row in self.db.execute(query, params).fetchall():
            yield self._stored(row)

    def counts(self, marketplace: str | None = None) -> dict[str, int]:
        query = "SELECT state, count(*) FROM orders"
        params: tuple[str, ...] = ()
        if marketplace:
            query += " WHERE marketplace = ?"
            params = (marketplace,)
        return dict(self.db.execute(query + " GROUP BY state", params).fetchall())

    def events(self, marketplace: str, order_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT at, event, detail FROM order_events WHERE marketplace = ? AND order_id = ? ORDER BY id",
            (marketplace, order_id),
        )
        return [{"at": _iso(at), "event": event, "detail": detail} for at, event, detail in rows]

    def events_since(self, marketplace: str, since: float = 0.0) -> list[tuple[str, float, str, str | None]]:
        """(order, when, event, detail) of every order event of ``marketplace`` since, newest first."""
        rows = self.db.execute(
            "SELECT order_id, at, event, detail FROM order_events WHERE marketplace = ? AND at >= ? "
            "ORDER BY at DESC, id DESC",
            (marketplace, since),
        )
        return [(str(o), float(at), str(e), None if d is None else str(d)) for o, at, e, d in rows]

    # -- writing -----------------------------------------------------------------------------

    def insert(self, order: Order, state: OrderState, decision: dict[str, Any], event: str) -> bool:
        """Store a new order in its first state; False (and nothing written) when it is known.

        An order that arrives already final (cancelled, shipped by the marketplace) is stored
        without its personal data: nothing will ever need it.
        """
        now = time.time()
        with self._tx():
            cursor = self.db.execute(
                f"INSERT INTO orders ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, "
                "NULL, 0, ?, ?) ON CONFLICT DO NOTHING",
                (
                    order.marketplace,
                    order.order_id,
                    state,
                    json.dumps(decision),
                    _kept(order, state),
                    order.status,
                    order.payment_status,
                    now,
                    now,
                ),
            )
            if cursor.rowcount == 0:
                return False
            self._event(order.marketplace, order.order_id, now, event, None)
        return True

    def refresh(self, order: Order) -> StoredOrder | None:
        """Take the marketplace's latest word on a known order: its statuses, and its content while open.

        An order in a final state keeps its erased personal data erased.
        """
        stored = self.get(order.marketplace, order.order_id)
        if stored is None:
            return None
        changed = stored.marketplace_status != order.status or stored.payment_status != order.payment_status
        now = time.time()
        with self._tx():
            if stored.state in FINAL:
                self.db.execute(
                    "UPDATE orders SET marketplace_status = ?, payment_status = ? "
                    "WHERE marketplace = ? AND order_id = ?",
                    (order.status, order.payment_status, order.marketplace, order.order_id),
                )
            else:
                self.db.execute(
                    "UPDATE orders SET marketplace_status = ?, payment_status = ?, order_json = ? "
                    "WHERE marketplace = ? AND order_id = ?",
                    (
                        order.status,
                        order.payment_status,
                        order.model_dump_json(),
                        order.marketplace,
                        order.order_id,
                    ),
                )
            if changed:
                self._event(
                    order.marketplace,
                    order.order_id,
                    now,
                    "marketplace",
                    f"status {stored.marketplace_status} -> {order.status}, "
                    f"payment {stored.payment_status} -> {order.payment_status}",
                )
        return self.get(order.marketplace, order.order_id)

    def transition(
        self,
        stored: StoredOrder,
        to: OrderState,
        event: str,
        detail: str | None = None,
        *,
        vtex_order_id: str | None = None,
        note: str | None = None,
    ) -> bool:
        """Move the order from the state it was read in to ``to``; False when another run moved it first.

        Clears the last error (the step that failed has now succeeded) and, on
        reaching a final state, erases the personal data.
        """
        now = time.time()
        order_json = _kept(stored.order, to) if to in FINAL else None
        with self._tx():
            cursor = self.db.execute(
                "UPDATE orders SET state = ?, updated_at = ?, vtex_order_id = coalesce(?, vtex_order_id), "
                "note = coalesce(?, note), error = NULL, error_retryable = NULL, attempts = 0, "
                "order_json = coalesce(?, order_json) "
                "WHERE marketplace = ? AND order_id = ? AND state = ?",
                (to, now, vtex_order_id, note, order_json, stored.marketplace, stored.order_id, stored.state),
            )
            if cursor.rowcount == 0:
                return False
            self._event(stored.marketplace, stored.order_id, now, event, detail)
        return True

    def record_error(self, stored: StoredOrder, message: str, retryable: bool) -> None:
        """A step failed: keep the state, count the attempt, remember why (shown by list and show)."""
        now = time.time()
        with self._tx():
            self.db.execute(
                "UPDATE orders SET error = ?, error_retryable = ?, attempts = attempts + 1, updated_at = ? "
                "WHERE marketplace = ? AND order_id = ?",
                (message, int(retryable), now, stored.marketplace, stored.order_id),
            )
            self._event(stored.marketplace, stored.order_id, now, "error", message)

    def note_event(self, stored: StoredOrder, event: str, detail: str | None = None) -> None:
        with self._tx():
            self._event(stored.marketplace, stored.order_id, time.time(), event, detail)

    def _event(self, marketplace: str, order_id: str, at: float, event: str, detail: str | None) -> None:
        self.db.execute(
            "INSERT INTO order_events (marketplace, order_id, at, event, detail) VALUES (?, ?, ?, ?, ?)",
            (marketplace, order_id, at, event, detail),
        )

    # -- shipments ---------------------------------------------------------------------------

    def confirmed_shipments(self, marketplace: str, order_id: str) -> dict[str, list[tuple[str, int]]]:
        """Invoice number -> the (sku, quantity) it covered, for packages already confirmed."""
        rows = self.db.execute(
            "SELECT invoice_number, items FROM order_shipments WHERE marketplace = ? AND order_id = ?",
            (marketplace, order_id),
        )
        return {number: [(sku, int(qty)) for sku, qty in json.loads(items)] for number, items in rows}

    def record_shipment(self, stored: StoredOrder, invoice_number: str, items: list[tuple[str, int]]) -> None:
        now = time.time()
        with self._tx():
            self.db.execute(
                "INSERT INTO order_shipments VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (stored.marketplace, stored.order_id, invoice_number, json.dumps(items), now),
            )
            self._event(
                stored.marketplace, stored.order_id, now, "shipment confirmed", f"invoice {invoice_number}"
            )

    # -- pull bookkeeping --------------------------------------------------------------------

    def cursor(self, marketplace: str) -> str | None:
        row = self.db.execute(
            "SELECT since FROM order_cursors WHERE marketplace = ?", (marketplace,)
        ).fetchone()
        return str(row[0]) if row else None

    def set_cursor(self, marketplace: str, since: str) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO order_cursors VALUES (?, ?) "
                "ON CONFLICT (marketplace) DO UPDATE SET since = excluded.since",
                (marketplace, since),
            )

    def record_unreadable(self, marketplace: str, order_id: str, message: str) -> None:
        """An order the marketplace sent that cannot be read: kept, retried by id on every pull."""
        now = time.time()
        with self._tx():
            self.db.execute(
                "INSERT INTO unreadable_orders VALUES (?, ?, ?, ?, ?) ON CONFLICT (marketplace, order_id) "
                "DO UPDATE SET message = excluded.message, last_seen = excluded.last_seen",
                (marketplace, order_id, message, now, now),
            )

    def unreadable(self, marketplace: str | None = None) -> dict[tuple[str, str], str]:
        query = "SELECT marketplace, order_id, message FROM unreadable_orders"
        params: tuple[str, ...] = ()
        if marketplace:
            query += " WHERE marketplace = ?"
            params = (marketplace,)
        return {(m, o): message for m, o, message in self.db.execute(query, params)}

    def clear_unreadable(self, marketplace: str, order_id: str) -> None:
        with self._tx():
            self.db.execute(
                "DELETE FROM unreadable_orders WHERE marketplace = ? AND order_id = ?",
                (marketplace, order_id),
            )


def _kept(order: Order, state: OrderState) -> str:
    """The order as stored in ``state``: without buyer and address once the state is final."""
    if state in FINAL:
        order = order.model_copy(update={"buyer": Buyer(), "shipping_address": None})
    return order.model_dump_json()


def _stored(row: tuple[Any, ...]) -> StoredOrder:
    (
        marketplace,
        order_id,
        state,
        decision,
        order_json,
        marketplace_status,
        payment_status,
        vtex_order_id,
        note,
        error,
        error_retryable,
        attempts,
        received_at,
        updated_at,
    ) = row
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    try:
        decided = json.loads(decision)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"decision: {exc}") from None
    if not isinstance(decided, dict):
        raise ValueError(f"decision is {decision!r}, not an object")
    for name, value in (("attempts", attempts), ("received_at", received_at), ("updated_at", updated_at)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} is {value!r}, not a number")
    return StoredOrder(
        marketplace=marketplace,
        order_id=order_id,
        state=state,
        decision=decided,
        order=Order.model_validate_json(order_json),
        marketplace_status=marketplace_status,
        payment_status=payment_status,
        vtex_order_id=vtex_order_id,
        note=note,
        error=error,
        error_retryable=None if error_retryable is None else bool(error_retryable),
        attempts=attempts,
        received_at=received_at,
        updated_at=updated_at,
    )
