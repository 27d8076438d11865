"""The Amazon stand-in's order desk: Orders 2026-01-01, confirmShipment and order acknowledgements.

Why an object of its own: ``standin.py`` is the stand-in's listings (Login with Amazon, Listings
Items and the Feeds API); orders are a second API with their own state, checks and invented
buyers. The two meet at the listings (an order is priced as its listing is) and at one feed
type (an acknowledgement feed travels the Feeds API like any feed, and only its processing is
here). :class:`OrderDesk` is a component the stand-in owns and routes the order endpoints to; it
is given what it needs (the listings, the seller, the marketplaces, the token check, the serial
numbers and the clock) and imports nothing of the stand-in's module.

What it answers the way the real API does:

* ``searchOrders``/``getOrder`` of Orders 2026-01-01: the sections ``includedData`` asks for,
  keyset pagination on (``lastUpdatedTime``, ``orderId``), the parameter rules of the spec;
* ``confirmShipment`` of Orders v0: 204; a repeat of the same ``packageReferenceId`` is accepted
  and changes nothing, shipping more than is left unshipped is 400;
* cancellation by a ``POST_ORDER_ACKNOWLEDGEMENT_DATA`` XML feed (``StatusCode`` Failure), with
  an XML processing report.

Orders come from buyers, which a stand-in has none of: :meth:`OrderDesk.create_order` (or
``POST /_sandbox/orders``) orders a listed SKU, priced as the listing is, and
:meth:`~OrderDesk.set_order_status` (or ``POST /_sandbox/orders/{id}/status``) moves it as
Amazon or the buyer would, so a test or a sandbox user plays the buyer.
"""

from __future__ import annotations

import base64
import copy
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from xml.etree import ElementTree

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.jsonio import dumps, loads
from engine.model import aware_time
from marketplaces._standin import Refused, look_up, sandbox_route
from marketplaces._standin import exact_json as _json
from marketplaces._standin import json_or_none as _body
from marketplaces.amazon._standin_shapes import (
    CURRENCIES,
    INVALID_MESSAGE,
    error_body,
    refused,
    schedule_value,
)
from marketplaces.amazon._standin_shapes import error as _error

__all__ = ["ACKNOWLEDGEMENT_FEED", "OrderDesk"]

UNKNOWN_ORDER, ORDER_SHIPPED = "4000004", "4000005"
"""The stand-in's own result codes for an unknown order and a shipped order not cancelled (the rest
of the 4000000 range is in ``_standin_shapes.py`` and ``standin.py``)."""
FULFILLMENT_STATUSES = frozenset(
    {
        "PENDING_AVAILABILITY",
        "PENDING",
        "UNSHIPPED",
        "PARTIALLY_SHIPPED",
        "SHIPPED",
        "CANCELLED",
        "UNFULFILLABLE",
    }
)
ORDER_SECTIONS = {
    "buyer": "BUYER",
    "recipient": "RECIPIENT",
    "proceeds": "PROCEEDS",
    "payment": "PAYMENT",
    "tax": "TAX",
    "fulfillment": "FULFILLMENT",
    "packages": "PACKAGES",
    "fulfillmentOrders": "FULFILLMENT_ORDERS",
}
"""Order fields searchOrders/getOrder return only when ``includedData`` names them."""
ITEM_SECTIONS = {
    "proceeds": "PROCEEDS",
    "expense": "EXPENSE",
    "promotion": "PROMOTION",
    "cancellation": "CANCELLATION",
    "fulfillment": "FULFILLMENT",
    "tax": "TAX",
}
ORDER_INCLUDED_DATA = frozenset(ORDER_SECTIONS.values()) | frozenset(ITEM_SECTIONS.values())
MARKETPLACE_NAMES = {
    "ATVPDKIKX0DER": "Amazon.com",
    "A2EUQ1WTGCTBG2": "Amazon.ca",
    "A1AM78C64UM0Y8": "Amazon.com.mx",
    "A2Q3Y263D00KWC": "Amazon.com.br",
}
ACKNOWLEDGEMENT_FEED = "POST_ORDER_ACKNOWLEDGEMENT_DATA"
CANCEL_REASONS = frozenset(
    {"NoInventory", "ShippingAddressUndeliverable", "CustomerExchange", "BuyerCanceled", "GeneralAdjustment"}
    | {"CarrierCreditDecision", "RiskAssessmentInformationNotValid", "CarrierCoverageFailure"}
    | {"CustomerReturn", "MerchandiseNotReceived"}
)
"""``CancelReason`` values the OrderAcknowledgement schema allows."""
PEOPLE = {
    "US": (
        ("Jordan Avery", "1200 Pine St", None, "Seattle", "WA", "98101"),
        ("Sam Rivera", "48 Harbor View Rd", "Apt 5", "Austin", "TX", "78701"),
        ("Casey Morgan", "730 Maple Ave", None, "Columbus", "OH", "43215"),
    ),
    "BR": (
        ("Ana Souza", "Rua das Flores|120|Apto 31|Centro", None, "São Paulo", "SP", "01310-100"),
        ("Bruno Lima", "Avenida Brasil|1500||Jardim América", None, "Rio de Janeiro", "RJ", "20040-002"),
        ("Carla Dias", "Rua XV de Novembro|88|Casa 2|Centro", None, "Curitiba", "PR", "80020-310"),
    ),
}
"""Invented buyers by country: name, street (Brazil: street|number|complement|neighbourhood),
second line, city, region, postal code. Any resemblance to a real person is accidental."""


class OrderDesk:
    """The orders of the seller of an Amazon stand-in: ``orders`` by order id.

    ``items`` are the seller's listings (the stand-in's own dict, by SKU), ``authorize`` the token
    check (it raises the 403), ``serial`` the stand-in's serial numbers (one sequence
    for both halves), ``clock`` what stamps createdTime and lastUpdatedTime; ``seed`` seeds the
    invented buyers and item ids.
    """

    def __init__(
        self,
        items: dict[str, dict[str, Any]],
        *,
        seller_id: str,
        marketplace_ids: frozenset[str],
        authorize: Callable[[Request], None],
        serial: Callable[[], int],
        clock: Callable[[], datetime],
        seed: int,
    ) -> None:
        self.items, self.seller_id, self.marketplace_ids = items, seller_id, marketplace_ids
        self._authorize, self._next, self.clock = authorize, serial, clock
        self.orders: dict[str, dict[str, Any]] = {}
        """Order id -> the Orders 2026-01-01 ``Order`` with every section; views drop what is not asked."""
        self.buyers = random.Random(seed)
        """Draws invented buyers and item ids, apart from the other draws."""
        self.order_ids = random.Random()
        """Order ids are not seeded: a sandbox restarted against the same project must not hand out
        ids its state store already holds for other orders."""

    def routes(self) -> list[Route]:
        """The order APIs' routes, then the sandbox's order controls (no token: they are not Amazon's)."""
        return [
            Route("/orders/2026-01-01/orders", self.search_orders, methods=["GET"]),
            Route("/orders/2026-01-01/orders/{order_id}", self.get_order, methods=["GET"]),
            Route(
                "/orders/v0/orders/{order_id}/shipmentConfirmation",
                self.confirm_shipment,
                methods=["POST"],
            ),
            sandbox_route("orders", self.sandbox_create_order),
            sandbox_route("orders/{order_id}/status", self.sandbox_order_status),
        ]

    # -- Orders: the buyer's side (Python and /_sandbox/ controls) -----------------------------

    def create_order(
        self,
        sku_id: str,
        quantity: int = 1,
        unit_price: Decimal | str | int | None = None,
        *,
        status: str = "UNSHIPPED",
        order_id: str | None = None,
        buyer: bool = True,
        shipping: Decimal | str | int | None = None,
        fulfilled_by: str = "MERCHANT",
    ) -> str:
        """A buyer orders a listed SKU; returns the order id (3-7-7 digits, as Amazon's).

        The price is the listing's own (its sale price while the sale runs), so the order matches
        what the seller listed; ``unit_price`` makes one that diverges. ``buyer=False`` gives what
        Amazon sends without a restricted-data token: no buyer, an address without name or street.
        """
        item = self.items.get(sku_id)
        if item is None:
            raise ValueError(
                f"SKU {sku_id!r} has no listing on the Amazon stand-in; list it before ordering it"
            )
        if not isinstance(quantity, int) or quantity < 1:
            raise ValueError(f"quantity must be a whole number of 1 or more, not {quantity!r}")
        status = _fulfillment_status(status)
        offers = item["attributes"].get("purchasable_offer") or [{}]
        offer = offers[0] if isinstance(offers[0], dict) else {}
        marketplace = str(offer.get("marketplace_id") or min(self.marketplace_ids))
        currency = str(offer.get("currency") or CURRENCIES.get(marketplace, "USD"))
        price = _decimal(unit_price, "unit_price") if unit_price is not None else _offer_price(offer)
        if price is None or price <= 0:
            raise ValueError(f"SKU {sku_id!r} has no price on its listing; pass unit_price")
        ship = _decimal(shipping, "shipping") if shipping is not None else Decimal(0)
        order_id = order_id or self._order_id()
        if order_id in self.orders:
            raise ValueError(f"order {order_id} exists already")
        now, line = self._order_stamp(), price * quantity
        names = item["attributes"].get("item_name") or [{}]

        def money(amount: Decimal) -> dict[str, str]:
            cents = amount.quantize(Decimal("0.01"), ROUND_HALF_UP)
            return {"amount": format(cents, "f"), "currencyCode": currency}

        breakdowns = [{"type": "ITEM", "subtotal": money(line)}]
        if ship:
            breakdowns.append({"type": "SHIPPING", "subtotal": money(ship)})
        order: dict[str, Any] = {
            "orderId": order_id,
            "createdTime": now,
            "lastUpdatedTime": now,
            "salesChannel": {
                "channelName": "AMAZON",
                "marketplaceId": marketplace,
                "marketplaceName": MARKETPLACE_NAMES.get(marketplace, marketplace),
            },
            "proceeds": {"grandTotal": money(line + ship), "breakdowns": breakdowns},
            "fulfillment": {
                "fulfillmentStatus": "UNSHIPPED",
                "fulfilledBy": fulfilled_by,
                "fulfillmentServiceLevel": "STANDARD",
            },
            "orderItems": [
                {
                    "orderItemId": f"{self.buyers.randrange(10**13, 10**14)}",
                    "quantityOrdered": quantity,
                    "product": {
                        "asin": "B0" + uuid.uuid5(uuid.NAMESPACE_URL, sku_id).hex[:8].upper(),
                        "title": str(names[0].get("value") or sku_id),
                        "sellerSku": sku_id,
                        "condition": {"conditionType": "NEW", "conditionSubtype": "NEW"},
                        "price": {"unitPrice": money(price)},
                    },
                    "proceeds": {
                        "proceedsTotal": money(line + ship),
                        "breakdowns": copy.deepcopy(breakdowns),
                    },
                    "fulfillment": {"quantityFulfilled": 0, "quantityUnfulfilled": quantity},
                }
            ],
            "packages": [],
        }
        order.update(self._invent_buyer(marketplace, buyer))
        self.orders[order_id] = order
        if status != "UNSHIPPED":
            self.set_order_status(order_id, status)
        return order_id

    def set_order_status(self, order_id: str, status: str) -> None:
        """Move an order as Amazon or the buyer would: paid (PENDING -> UNSHIPPED), shipped, cancelled."""
        order = self.orders.get(order_id)
        if order is None:
            raise KeyError(f"no order {order_id} on the Amazon stand-in")
        status = _fulfillment_status(status)
        for item in order["orderItems"]:
            quantity = item["quantityOrdered"]
            if status == "SHIPPED":
                item["fulfillment"].update(quantityFulfilled=quantity, quantityUnfulfilled=0)
            elif status == "CANCELLED":
                item["cancellation"] = {
                    "cancellationRequest": {"requester": "BUYER", "cancelReason": "Changed mind"},
                    "cancellationExecution": {"cancelledBy": "BUYER", "cancelReason": "BuyerCanceled"},
                }
        order["fulfillment"]["fulfillmentStatus"] = status
        order["lastUpdatedTime"] = self._order_stamp()

    def order_record(self, order_id: str) -> dict[str, Any]:
        """The whole order as the stand-in holds it (every section), a copy for tests to read."""
        if order_id not in self.orders:
            raise KeyError(f"no order {order_id} on the Amazon stand-in")
        return copy.deepcopy(self.orders[order_id])

    async def sandbox_create_order(self, request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("sku_id"), str):
            return self._control_error(400, "The body must be a JSON object with a 'sku_id'.")
        try:
            order_id = self.create_order(
                body["sku_id"],
                int(body.get("quantity", 1)),
                body.get("unit_price"),
                status=str(body.get("status") or "UNSHIPPED"),
            )
        except (ValueError, TypeError) as exc:
            return self._control_error(400, str(exc))
        return _json({"order_id": order_id}, 201)

    async def sandbox_order_status(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            return self._control_error(400, "The body must be a JSON object with a 'status'.")
        if order_id not in self.orders:
            return self._control_error(404, f"Order {order_id} not found.")
        try:
            self.set_order_status(order_id, body["status"])
        except ValueError as exc:
            return self._control_error(400, str(exc))
        return _json(
            {"order_id": order_id, "status": self.orders[order_id]["fulfillment"]["fulfillmentStatus"]}
        )

    def _control_error(self, status: int, message: str) -> Response:
        """Amazon's error shape plus a top-level ``message``, which `tradepost sandbox` prints."""
        return _json({**error_body(status, message), "message": message}, status)

    def _order_id(self) -> str:
        while True:
            draw = self.order_ids
            order_id = f"{draw.randint(111, 999)}-{draw.randrange(10**7):07d}-{draw.randrange(10**7):07d}"
            if order_id not in self.orders:
                return order_id

    def _order_stamp(self) -> str:
        return _stamp(self.clock())

    def _invent_buyer(self, marketplace: str, disclosed: bool) -> dict[str, Any]:
        """buyer, recipient and (Brazil) the buyer's CPF; only city, region and postal code when withheld."""
        country = "BR" if marketplace == "A2Q3Y263D00KWC" else "US"
        name, street, line2, city, region, postal = self.buyers.choice(PEOPLE[country])
        address: dict[str, Any] = {
            "city": city,
            "stateOrRegion": region,
            "postalCode": postal,
            "countryCode": country,
        }
        if not disclosed:
            return {"recipient": {"deliveryAddress": address}}
        address.update(
            name=name, addressType="RESIDENTIAL", phone=f"+1 206 555 {self.buyers.randrange(10**4):04d}"
        )
        if country == "BR":
            street_name, number, complement, neighborhood = street.split("|")
            address["addressLine1"] = f"{street_name}, {number}"
            extended = {"streetName": street_name, "streetNumber": number, "neighborhood": neighborhood}
            address["extendedFields"] = {**extended, **({"complement": complement} if complement else {})}
            address["phone"] = f"+55 11 9{self.buyers.randrange(10**8):08d}"
        else:
            address["addressLine1"] = street
            if line2:
                address["addressLine2"] = line2
        alias = "".join(self.buyers.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(16))
        invented: dict[str, Any] = {
            "buyer": {"buyerName": name, "buyerEmail": f"{alias}@marketplace.amazon.com"},
            "recipient": {"deliveryAddress": address},
        }
        if country == "BR":
            cpf = f"{self.buyers.randrange(10**11):011d}"
            invented["tax"] = {
                "taxRegistrations": [
                    {"entityType": "BUYER", "taxRegistrationType": "CPF", "taxRegistrationNumber": cpf}
                ]
            }
        return invented

    # -- Orders 2026-01-01 -----------------------------------------------------------------------

    async def search_orders(self, request: Request) -> Response:
        self._authorize(request)
        search = OrderSearch.parse(request.query_params, self.marketplace_ids)
        if isinstance(search, str):
            return _error(400, search)
        # Keyset pagination on (lastUpdatedTime, orderId): an order changed between two pages
        # moves behind the cursor and is returned again, never skipped.
        matching = sorted((_order_key(o), o) for o in self.orders.values() if search.matches(o))
        if search.after is not None:
            matching = [(key, order) for key, order in matching if key > search.after]
        page = matching[: search.size]
        body: dict[str, Any] = {"orders": [_order_view(order, search.included) for _, order in page]}
        if len(matching) > search.size:
            body["pagination"] = {"nextToken": _token(page[-1][0])}
        body["lastUpdatedBefore" if "lastUpdatedAfter" in search.bounds else "createdBefore"] = (
            self._order_stamp()
        )
        return _json(body)

    async def get_order(self, request: Request) -> Response:
        self._authorize(request)
        included, problem = _included(request.query_params.get("includedData"))
        if problem:
            return _error(400, problem)
        order = look_up(self.orders, request.path_params["order_id"], _unknown_order)
        return _json({"order": _order_view(order, included)})

    # -- Orders v0: confirmShipment --------------------------------------------------------------

    async def confirm_shipment(self, request: Request) -> Response:
        self._authorize(request)
        order_id = request.path_params["order_id"]
        order = look_up(self.orders, order_id, lambda key: refused(404, f"Order {key} not found."))
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _error(415, "The request body must be application/json.")
        body = await _body(request)
        malformed = _confirmation_errors(body, self.marketplace_ids)
        if malformed:
            return _error(400, malformed)
        detail = body["packageDetail"]
        reference = detail["packageReferenceId"]
        if any(package["packageReferenceId"] == reference for package in order["packages"]):
            return Response(status_code=204)  # the same package again: already recorded, nothing changes
        fulfillment = order["fulfillment"]
        status = fulfillment["fulfillmentStatus"]
        if fulfillment.get("fulfilledBy") == "AMAZON":
            return _error(400, f"Order {order_id} is fulfilled by Amazon; it takes no shipment confirmation.")
        if status in ("CANCELLED", "UNFULFILLABLE"):
            return _error(400, f"Order {order_id} is {status.lower()}; it cannot be shipped.")
        if status in ("PENDING", "PENDING_AVAILABILITY"):
            return _error(
                400, f"Order {order_id} is {status}: its payment is not authorised, do not ship it."
            )
        lines = {item["orderItemId"]: item for item in order["orderItems"]}
        for entry in detail["orderItems"]:
            line = lines.get(entry["orderItemId"])
            if line is None:
                return _error(400, f"Order item {entry['orderItemId']} is not in order {order_id}.")
            left = line["fulfillment"]["quantityUnfulfilled"]
            if entry["quantity"] > left:
                why = f"Order item {entry['orderItemId']}: quantity {entry['quantity']} exceeds the {left} "
                return _error(400, why + "units not yet shipped (already shipped).")
        for entry in detail["orderItems"]:
            shipped = lines[entry["orderItemId"]]["fulfillment"]
            shipped["quantityFulfilled"] += entry["quantity"]
            shipped["quantityUnfulfilled"] -= entry["quantity"]
        everything = all(item["fulfillment"]["quantityUnfulfilled"] == 0 for item in order["orderItems"])
        fulfillment["fulfillmentStatus"] = "SHIPPED" if everything else "PARTIALLY_SHIPPED"
        now = self._order_stamp()
        order["packages"].append(
            {
                "packageReferenceId": reference,
                "createdTime": now,
                "packageStatus": {"status": "SHIPPED"},
                "carrier": detail.get("carrierName") or detail["carrierCode"],
                "shipTime": detail["shipDate"],
                "shippingService": detail.get("shippingMethod"),
                "trackingNumber": detail["trackingNumber"],
                "packageItems": [
                    {"orderItemId": e["orderItemId"], "quantity": e["quantity"]} for e in detail["orderItems"]
                ],
            }
        )
        order["lastUpdatedTime"] = now
        return Response(status_code=204)

    # -- POST_ORDER_ACKNOWLEDGEMENT_DATA ---------------------------------------------------------

    def acknowledge(self, content: bytes) -> tuple[str, bytes]:
        """An OrderAcknowledgement XML feed: StatusCode Failure cancels; the report is XML too."""
        try:
            root = ElementTree.fromstring(content)
        except ElementTree.ParseError as exc:
            return "FATAL", self._xml_report(
                0, [(0, INVALID_MESSAGE, f"The feed is not well-formed XML: {exc}", None)]
            )
        fatal = None
        if root.tag != "AmazonEnvelope":
            fatal = "The document element must be AmazonEnvelope."
        elif (root.findtext("Header/MerchantIdentifier") or "").strip() != self.seller_id:
            fatal = "The header's MerchantIdentifier is not the seller that submitted the feed."
        elif (root.findtext("MessageType") or "").strip() != "OrderAcknowledgement":
            fatal = "MessageType must be OrderAcknowledgement for POST_ORDER_ACKNOWLEDGEMENT_DATA."
        if fatal is not None:
            return "FATAL", self._xml_report(0, [(0, INVALID_MESSAGE, fatal, None)])
        messages = root.findall("Message")
        results = []
        for message in messages:
            message_id = int((message.findtext("MessageID") or "0").strip() or 0)
            acknowledgement = message.find("OrderAcknowledgement")
            error = (
                self._apply_acknowledgement(acknowledgement)
                if acknowledgement is not None
                else (INVALID_MESSAGE, "The message has no OrderAcknowledgement.", None)
            )
            if error is not None:
                results.append((message_id, *error))
        return "DONE", self._xml_report(len(messages), results)

    def _apply_acknowledgement(
        self, acknowledgement: ElementTree.Element
    ) -> tuple[str, str, str | None] | None:
        order_id = (acknowledgement.findtext("AmazonOrderID") or "").strip()
        status = (acknowledgement.findtext("StatusCode") or "").strip()
        if not order_id or status not in ("Success", "Failure"):
            return (
                INVALID_MESSAGE,
                "AmazonOrderID and a StatusCode of Success or Failure are required.",
                order_id,
            )
        order = self.orders.get(order_id)
        if order is None:
            return UNKNOWN_ORDER, f"AmazonOrderID {order_id} was not found for this seller.", order_id
        lines = {item["orderItemId"]: item for item in order["orderItems"]}
        reasons: dict[str, str] = {}
        for item in acknowledgement.findall("Item"):
            code = (item.findtext("AmazonOrderItemCode") or "").strip()
            reason = (item.findtext("CancelReason") or "").strip()
            if code not in lines:
                return INVALID_MESSAGE, f"AmazonOrderItemCode {code} is not in order {order_id}.", order_id
            if reason and reason not in CANCEL_REASONS:
                return INVALID_MESSAGE, f"CancelReason {reason!r} is not a valid value.", order_id
            reasons[code] = reason or "GeneralAdjustment"
        state = order["fulfillment"]["fulfillmentStatus"]
        if status == "Success" or state in ("CANCELLED", "UNFULFILLABLE"):
            return None  # acknowledged; cancelling a cancelled order changes nothing
        if state in ("SHIPPED", "PARTIALLY_SHIPPED"):
            why = f"Order {order_id} has shipped items and cannot be cancelled; refund it instead."
            return ORDER_SHIPPED, why, order_id
        for code, line in lines.items():
            line["cancellation"] = {
                "cancellationExecution": {
                    "cancelledBy": "MERCHANT",
                    "cancelReason": reasons.get(code, "GeneralAdjustment"),
                }
            }
        order["fulfillment"]["fulfillmentStatus"] = "CANCELLED"
        order["lastUpdatedTime"] = self._order_stamp()
        return None

    def _xml_report(self, processed: int, errors: list[tuple[int, str, str, str | None]]) -> bytes:
        """A ProcessingReport envelope: the summary, then one Result per message in error."""
        envelope = ElementTree.Element("AmazonEnvelope")
        header = ElementTree.SubElement(envelope, "Header")
        ElementTree.SubElement(header, "DocumentVersion").text = "1.02"
        ElementTree.SubElement(header, "MerchantIdentifier").text = self.seller_id
        ElementTree.SubElement(envelope, "MessageType").text = "ProcessingReport"
        message = ElementTree.SubElement(envelope, "Message")
        ElementTree.SubElement(message, "MessageID").text = "1"
        report = ElementTree.SubElement(message, "ProcessingReport")
        ElementTree.SubElement(report, "DocumentTransactionID").text = str(self._next())
        ElementTree.SubElement(report, "StatusCode").text = "Complete"
        summary = ElementTree.SubElement(report, "ProcessingSummary")
        failed = len({message_id for message_id, *_ in errors})
        counts = {
            "MessagesProcessed": processed,
            "MessagesSuccessful": max(0, processed - failed),
            "MessagesWithError": failed,
            "MessagesWithWarning": 0,
        }
        for name, count in counts.items():
            ElementTree.SubElement(summary, name).text = str(count)
        for message_id, code, description, order_id in errors:
            result = ElementTree.SubElement(report, "Result")
            ElementTree.SubElement(result, "MessageID").text = str(message_id)
            ElementTree.SubElement(result, "ResultCode").text = "Error"
            ElementTree.SubElement(result, "ResultMessageCode").text = code
            ElementTree.SubElement(result, "ResultDescription").text = description
            if order_id:
                extra = ElementTree.SubElement(result, "AdditionalInfo")
                ElementTree.SubElement(extra, "AmazonOrderID").text = order_id
        document: bytes = ElementTree.tostring(envelope, encoding="utf-8", xml_declaration=True)
        return document


# -- orders: views, filters, request shapes ----------------------------------------------------


@dataclass(frozen=True)
class OrderSearch:
    """searchOrders' query, checked as the spec states: which orders, which sections, which page."""

    marketplaces: frozenset[str]
    bounds: dict[str, datetime]
    statuses: frozenset[str]
    fulfilled_by: frozenset[str]
    included: frozenset[str]
    size: int
    after: tuple[datetime, str] | None

    @classmethod
    def parse(cls, query: Mapping[str, str], available: frozenset[str]) -> OrderSearch | str:
        """The search, or the message of Amazon's 400."""
        marketplaces = frozenset(_csv(query.get("marketplaceIds")))
        if not marketplaces:
            return "Missing required 'marketplaceIds' query parameter."
        unknown = ", ".join(sorted(marketplaces - available))
        if unknown:
            return f"Invalid 'marketplaceIds': {unknown} is not available to you."
        if bool(query.get("createdAfter")) == bool(query.get("lastUpdatedAfter")):
            return "Exactly one of 'createdAfter' and 'lastUpdatedAfter' is required."
        if query.get("createdAfter") and query.get("lastUpdatedBefore"):
            return "'createdAfter' cannot be combined with 'lastUpdatedBefore'."
        if query.get("lastUpdatedAfter") and query.get("createdBefore"):
            return "'lastUpdatedAfter' cannot be combined with 'createdBefore'."
        bounds: dict[str, datetime] = {}
        for name in ("createdAfter", "createdBefore", "lastUpdatedAfter", "lastUpdatedBefore"):
            if query.get(name):
                moment = _parse_time(query[name])
                if moment is None:
                    return f"'{name}' is not an ISO 8601 date-time with a time zone."
                bounds[name] = moment
        statuses, fulfilled_by = (
            frozenset(_csv(query.get("fulfillmentStatuses"))),
            frozenset(_csv(query.get("fulfilledBy"))),
        )
        wrong = sorted(statuses - FULFILLMENT_STATUSES) + sorted(fulfilled_by - {"MERCHANT", "AMAZON"})
        if wrong:
            return f"Invalid filter value: {', '.join(wrong)}."
        included, problem = _included(query.get("includedData"))
        if problem:
            return problem
        asked = query.get("maxResultsPerPage", "100")
        size = int(asked) if asked.isdigit() else 0
        if not 1 <= size <= 100:
            return "'maxResultsPerPage' must be between 1 and 100."
        after = _cursor(query["paginationToken"]) if query.get("paginationToken") else None
        if query.get("paginationToken") and after is None:
            return "Invalid 'paginationToken'."
        return cls(marketplaces, bounds, statuses, fulfilled_by, included, size, after)

    def matches(self, order: Mapping[str, Any]) -> bool:
        created, updated = _parse_time(order["createdTime"]), _parse_time(order["lastUpdatedTime"])
        moments = {"createdAfter": created, "createdBefore": created}
        moments |= {"lastUpdatedAfter": updated, "lastUpdatedBefore": updated}
        for name, bound in self.bounds.items():
            moment = moments[name]
            if moment is None or (moment < bound if name.endswith("After") else moment > bound):
                return False
        fulfillment = order["fulfillment"]
        return (
            order["salesChannel"]["marketplaceId"] in self.marketplaces
            and (not self.statuses or fulfillment["fulfillmentStatus"] in self.statuses)
            and (not self.fulfilled_by or fulfillment.get("fulfilledBy") in self.fulfilled_by)
        )


def _unknown_order(order_id: str) -> Refused:
    return refused(404, f"Order {order_id} not found.", "Check the order id and the seller.")


def _fulfillment_status(status: str) -> str:
    """Amazon's status for what a sandbox user types: any case, "paid" and "canceled" too."""
    wanted = str(status).strip().upper().replace("-", "_").replace(" ", "_")
    wanted = {"PAID": "UNSHIPPED", "CANCELED": "CANCELLED"}.get(wanted, wanted)
    if wanted not in FULFILLMENT_STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(sorted(FULFILLMENT_STATUSES))}")
    return wanted


def _order_view(order: Mapping[str, Any], included: frozenset[str]) -> dict[str, Any]:
    """The order as searchOrders/getOrder return it: only the sections ``includedData`` named."""
    view = {
        k: copy.deepcopy(v)
        for k, v in order.items()
        if ORDER_SECTIONS.get(k, "") in included or k not in ORDER_SECTIONS
    }
    view["orderItems"] = [
        {
            k: copy.deepcopy(v)
            for k, v in item.items()
            if k not in ITEM_SECTIONS or ITEM_SECTIONS[k] in included
        }
        for item in order["orderItems"]
    ]
    return view


def _included(value: str | None) -> tuple[frozenset[str], str | None]:
    wanted = frozenset(_csv(value))
    unknown = sorted(wanted - ORDER_INCLUDED_DATA)
    return wanted, f"Invalid 'includedData': {', '.join(unknown)}." if unknown else None


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _order_key(order: Mapping[str, Any]) -> tuple[datetime, str]:
    updated = _parse_time(order["lastUpdatedTime"])
    assert updated is not None
    return updated, str(order["orderId"])


def _token(key: tuple[datetime, str]) -> str:
    raw = dumps([_stamp(key[0]), key[1]]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _cursor(token: str) -> tuple[datetime, str] | None:
    try:
        stamp, order_id = loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):
        return None
    moment = _parse_time(stamp) if isinstance(stamp, str) else None
    return (moment, str(order_id)) if moment is not None else None


def _parse_time(value: str) -> datetime | None:
    """An ISO 8601 time with its offset, or None for anything else (the desk answers the refusal)."""
    try:
        return aware_time(value)
    except (TypeError, ValueError):
        return None


def _stamp(moment: datetime) -> str:
    """SP-API's time format: UTC, whole seconds, a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValueError(f"{name} must be a decimal amount, not {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} must be a decimal amount, not {value!r}") from None


def _confirmation_errors(body: Any, marketplaces: frozenset[str]) -> str | None:
    """ConfirmShipmentRequest as ordersV0 requires it; the message names the first problem."""
    if not isinstance(body, dict):
        return "The request body must be a ConfirmShipmentRequest object."
    if not isinstance(body.get("marketplaceId"), str) or not body["marketplaceId"]:
        return "ConfirmShipmentRequest: 'marketplaceId' is required."
    if body["marketplaceId"] not in marketplaces:
        return f"Invalid 'marketplaceId': {body['marketplaceId']} is not available to you."
    detail = body.get("packageDetail")
    if not isinstance(detail, dict):
        return "ConfirmShipmentRequest: 'packageDetail' is required."
    for name in ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate"):
        if not isinstance(detail.get(name), str) or not detail[name].strip():
            return f"packageDetail: '{name}' is required."
    if not detail["packageReferenceId"].isdigit() or int(detail["packageReferenceId"]) <= 0:
        return "packageDetail.packageReferenceId: only positive numeric values are supported."
    if detail["carrierCode"] == "Other" and not detail.get("carrierName"):
        return "packageDetail.carrierName is required when carrierCode is 'Other'."
    if _parse_time(detail["shipDate"]) is None:
        return "packageDetail.shipDate must be an ISO 8601 date-time."
    items = detail.get("orderItems")
    if not isinstance(items, list) or not items:
        return "packageDetail: 'orderItems' needs at least one item."
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("orderItemId"), str):
            return f"packageDetail.orderItems[{n}].orderItemId is required."
        quantity = item.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            return f"packageDetail.orderItems[{n}].quantity must be a whole number of 1 or more."
    return None


# -- what a listing charges (standin.py's offer check reads the same schedules) ----------------


def _offer_price(offer: Mapping[str, Any]) -> Decimal | None:
    """What a buyer pays now: the discounted price while its schedule runs, else our_price."""
    sale = offer.get("discounted_price")
    if isinstance(sale, list) and sale and isinstance(sale[0], dict):
        entry = (sale[0].get("schedule") or [{}])[0]
        today = datetime.now(UTC)
        start, end = (
            _schedule_bound(entry.get("start_at"), end=False),
            _schedule_bound(entry.get("end_at"), end=True),
        )
        value = schedule_value(sale)
        if value is not None and start is not None and end is not None and start <= today <= end:
            return value
    return schedule_value(offer.get("our_price"))


def _schedule_bound(value: Any, end: bool) -> datetime | None:
    """A sale window bound in UTC; a bare date ("2999-12-31") covers that whole day."""
    if not isinstance(value, str):
        return None
    moment = _parse_time(value)
    if moment is not None:
        return moment
    try:
        day = datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return None
    return day + timedelta(days=1) if end and len(value) == 10 else day
