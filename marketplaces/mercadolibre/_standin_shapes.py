"""What both halves of the Mercado Libre stand-in answer with and read: the error shape, JSON
bodies, the number checks, and an item's totals and variations (which listings and orders move).

The listings (``standin.py``) and the order desk (``_standin_order_desk.py``) import these;
this module imports neither, so imports run one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from marketplaces._standin import Refusal as _Refusal
from marketplaces._standin import json_object

__all__ = ["Refusal", "cause", "count", "find_variation", "object_body", "positive", "totals"]


@dataclass
class Refusal(_Refusal):
    """An answer in Mercado Libre's error shape ``{message, error, status, cause[]}``."""

    status: int
    error: str
    message: str
    cause: tuple[dict[str, Any], ...] = ()

    def body(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "error": self.error,
            "status": self.status,
            "cause": list(self.cause),
        }


def cause(code: str, field: str, message: str) -> dict[str, Any]:
    """One entry of a refusal's ``cause``: the code and the field it names."""
    return {"type": "error", "code": code, "references": [field], "message": message}


async def object_body(request: Request) -> dict[str, Any]:
    """The JSON object a request sends; a 400 when it is not JSON or not an object."""
    not_json = Refusal(400, "bad_request", "the body is not valid JSON")
    return await json_object(request, not_json, Refusal(400, "bad_request", "the body must be a JSON object"))


def positive(value: Any) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool) and value > 0


def count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def totals(item: dict[str, Any]) -> None:
    """An item with variations shows their total stock and, per ITEMS.md, the highest price."""
    variations = item["variations"]
    if variations:
        item["price"] = max(v["price"] for v in variations)
        item["available_quantity"] = sum(v["available_quantity"] for v in variations)
        item["sold_quantity"] = sum(v.get("sold_quantity", 0) for v in variations)


def find_variation(items: dict[str, dict[str, Any]], remote_id: str) -> dict[str, Any]:
    """The variation ``MLB123/987`` names."""
    item_id, _, variation_id = remote_id.partition("/")
    return next(v for v in items[item_id]["variations"] if str(v["id"]) == variation_id)
