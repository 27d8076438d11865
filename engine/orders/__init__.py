"""Orders: the canonical order, the store that tracks each one, and the desk that moves it.

An order channel (:mod:`engine.connectors`) reads a marketplace's orders into :class:`Order`;
the desk decides, places it in VTEX, and confirms or cancels on the marketplace.
"""

from __future__ import annotations

from engine.model._order import Address, Buyer, FulfilmentStatus, Order, OrderItem, PaymentStatus
from engine.orders._flow import (
    EXIT_PARTIAL,
    OrderError,
    PullSummary,
    PushSummary,
    VtexPlacement,
    approve,
    reject,
)
from engine.orders._store import OPEN, STATES, OrderStore, StoredOrder

__all__ = [
    "EXIT_PARTIAL",
    "OPEN",
    "STATES",
    "Address",
    "Buyer",
    "FulfilmentStatus",
    "Order",
    "OrderError",
    "OrderItem",
    "OrderStore",
    "PaymentStatus",
    "PullSummary",
    "PushSummary",
    "StoredOrder",
    "VtexPlacement",
    "approve",
    "reject",
]
