"""What both halves of the Amazon stand-in answer with and read: SP-API's error shape, the
marketplaces' currencies, a price schedule's value and the malformed-message code.

The listings (``standin.py``) judge offers by the currencies and schedules, the order desk
(``_standin_order_desk.py``) charges by them; both report a malformed feed message with
:data:`INVALID_MESSAGE`. This module imports neither half, so imports run one way.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.responses import Response

from marketplaces._standin import Refused, exact_json

__all__ = ["CURRENCIES", "ERROR_CODES", "INVALID_MESSAGE", "error", "error_body", "refused", "schedule_value"]

ERROR_CODES = {
    400: "InvalidInput",
    403: "Unauthorized",
    404: "NotFound",
    415: "UnsupportedMediaType",
    429: "QuotaExceeded",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}
INVALID_MESSAGE = "4000003"
"""The stand-in's result code for a malformed feed message, of either feed type."""
CURRENCIES = {
    "ATVPDKIKX0DER": "USD",
    "A2EUQ1WTGCTBG2": "CAD",
    "A1AM78C64UM0Y8": "MXN",
    "A2Q3Y263D00KWC": "BRL",
}
"""The currency each marketplace sells in: an offer in another is refused, an order of a listing
without an offer is priced in it."""


def error_body(status: int, message: str) -> dict[str, Any]:
    """SP-API's error shape: ``{"errors": [{code, message}]}``."""
    return {"errors": [{"code": ERROR_CODES.get(status, "InvalidInput"), "message": message}]}


def error(status: int, message: str, details: str | None = None) -> Response:
    """An SP-API error answer, with ``details`` when given."""
    return exact_json(_detailed(status, message, details), status)


def refused(status: int, message: str, details: str | None = None) -> Refused:
    """The same answer, to raise from anywhere in a handler."""
    return Refused(status, _detailed(status, message, details))


def _detailed(status: int, message: str, details: str | None) -> dict[str, Any]:
    body = error_body(status, message)
    if details:
        body["errors"][0]["details"] = details
    return body


def schedule_value(prices: Any) -> Decimal | None:
    """The first ``value_with_tax`` of ``our_price`` or ``discounted_price``, if it is a number."""
    try:
        value = prices[0]["schedule"][0]["value_with_tax"]
    except (TypeError, LookupError):
        return None
    return Decimal(str(value)) if isinstance(value, int | Decimal) and not isinstance(value, bool) else None
