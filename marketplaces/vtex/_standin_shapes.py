"""What both parts of the VTEX stand-in hold and answer with: a SKU as VTEX answers for it, the
store's seller id, VTEX's error shape and the handler type the key check wraps.

The catalog side (``standin.py``) builds the SKUs and serves them; the order desk
(``_standin_order_desk.py``) reserves and ships their stock. This module imports neither, so
imports run one way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from marketplaces._standin import Refused, exact_json

__all__ = ["SELLER_ID", "Handler", "StoredSku", "error", "error_body", "refused"]

SELLER_ID = "1"
"""VTEX's id for the store itself as the seller of its own SKUs."""

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class StoredSku:
    """One SKU as VTEX would answer for it, prepared once."""

    id: str
    trade_policies: tuple[str, ...]
    context: dict[str, Any]
    prices: dict[str, Any]
    computed: dict[str, Any]
    inventory: dict[str, Any]
    unit_multiplier: Decimal
    available: int
    selling_cents: int | None
    promotional_cents: int | None
    list_cents: int | None
    selling_in: dict[str, Decimal] = field(default_factory=dict)
    """Trade policy -> its selling price, where it is not ``computed``'s (priced apart)."""


def error_body(status: int, message: str) -> dict[str, Any]:
    """VTEX's error shape (as the OMS and Checkout specs document it)."""
    return {"error": {"code": str(status), "message": message, "exception": None}}


def error(status: int, message: str) -> Response:
    return exact_json(error_body(status, message), status)


def refused(status: int, message: str) -> Refused:
    """The same answer, to raise from anywhere in a handler."""
    return Refused(status, error_body(status, message))
