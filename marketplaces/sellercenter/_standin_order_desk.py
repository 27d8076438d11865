"""The SellerCenter stand-in's order desk: GetOrders, GetOrder, GetOrderItems, the item status calls,
SetInvoiceAccessKey, GetShipmentProviders, GetFailureReasons, and the sandbox's customer controls.

Why an object of its own: SellerCenter routes every call on one URL by its ``Action`` parameter, so
the catalog stand-in (``standin.py``) verifies the signed query and hands an order action to this
desk through :meth:`SellerCenterOrderDesk.actions` (``Action`` -> ``_http.ActionHandler``); a
handler answers the ``Body`` of a ``SuccessResponse`` or raises ``_http.ActionRefused`` (an
``ErrorResponse``), and the stand-in writes either in the ``Format`` asked. The desk is given only
the seller's products (by SellerSku, with ``Price``, ``SalePrice``, ``Quantity`` and ``Name`` as the
catalog stand-in keeps them: assign :attr:`~SellerCenterOrderDesk.products` the stand-in's own
table) and a clock, and imports nothing of the catalog stand-in.

What it checks (API.md §3, §6, §7; the error codes are Falabella's, presumed the same on Dafiti):

- ``GetOrders``: ``CreatedAfter``/``CreatedBefore`` (E046) and ``UpdatedAfter``/``UpdatedBefore``
  (E047) in ISO 8601 with an offset, ``Status``, ``Offset`` (E014), ``Limit`` 1..:data:`LIMIT_MAX`
  (E015), ``SortBy`` ``created_at``/``updated_at`` and ``SortDirection`` ``ASC``/``DESC`` (both
  unverified). ``GetOrder``/``GetOrderItems`` by ``OrderId``.
- Status is per item, one unit each (an order of 2 units has 2 items): ``pending`` →
  ``ready_to_ship`` → ``shipped`` → ``delivered``, with ``canceled``, ``failed`` and ``returned``
  aside. ``SetStatusToPackedByMarketplace`` (``OrderItemIds``, ``DeliveryType``,
  ``ShippingProvider`` from ``GetShipmentProviders``) gives pending items a purchase order and a
  package; the status stays ``pending`` (how Dafiti shows a packed item is unverified).
  ``SetInvoiceAccessKey`` (``OrderItemIds`` or ``OrderItemId``, a 44-digit ``InvoiceAccessKey``,
  ``InvoiceNumber``, ``InvoiceDate``) records the NF-e on the items (the item fields
  ``InvoiceAccessKey`` and ``TrackingCode`` are the stand-in's, unverified). ``SetStatusToReadyToShip``
  needs packed items with an access key (API.md's advice for a stand-in); ``SetStatusToShipped``
  needs ``ready_to_ship``; ``SetStatusToCanceled`` only ``pending``, with a ``Reason`` from
  ``GetFailureReasons`` (E022). A transition the item's status does not allow is E028, an unknown
  item E020; a missing or malformed parameter is E001 and an unknown order E016 (both codes
  undocumented, chosen here).

Orders come from customers, which a stand-in has none of: :meth:`~SellerCenterOrderDesk.create_order`
and :meth:`~SellerCenterOrderDesk.set_status` play them, and so do the sandbox's controls
``POST /_sandbox/orders`` and ``POST /_sandbox/orders/{id}/status`` (``tradepost sandbox order`` and
``order-status``). Every change moves the item's and the order's ``UpdatedAt``, written as Dafiti
writes dates (``YYYY-MM-DD HH:MM:SS`` in São Paulo time, no offset: unverified).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.model import aware_time
from marketplaces._standin import exact_json, json_or_none, sandbox_route
from marketplaces.sellercenter._http import ActionCall, ActionHandler, ActionRefused, error_envelope

__all__ = ["SellerCenterOrderDesk"]

STATUSES = ("pending", "ready_to_ship", "shipped", "delivered", "canceled", "failed", "returned")
ENDED = frozenset({"canceled", "failed", "returned"})
DELIVERY_TYPES = frozenset({"dropship", "pickup", "send_to_warehouse"})
LIMIT_MAX = 100
"""GetOrders' largest ``Limit`` in the stand-in (Dafiti's is not published)."""
SHIPMENT_PROVIDERS = ("Correios", "Jadlog", "Total Express", "Transportadora Sandbox")
"""GetShipmentProviders' names (made up: Dafiti's list is the seller's own; the last is the VTEX
stand-in's courier, so the sandbox ships without a ``carriers`` option)."""
FAILURE_REASONS = (
    ("canceled", "Out of stock"),
    ("canceled", "Wrong price or pricing error"),
    ("canceled", "Customer requested cancellation"),
    ("failed", "Customer not at home"),
)
"""GetFailureReasons' (Type, Name) pairs (made up: Dafiti's are not published)."""
ZONE = ZoneInfo("America/Sao_Paulo")
NFE_KEY_DIGITS = 44
CUSTOMERS = (("Ana", "Souza"), ("Bruno", "Lima"), ("Carla", "Pereira"))
ADDRESSES = (
    ("Rua Augusta, 1508", "Apto 42", "Consolação", "São Paulo", "SP", "01304-001"),
    ("Avenida Atlântica, 2100", "", "Copacabana", "Rio de Janeiro", "RJ", "22021-001"),
)
"""Made-up customers and addresses for sandbox orders (the streets exist; the people do not)."""


class SellerCenterOrderDesk:
    """The orders of one SellerCenter seller.

    ``products`` maps a seller SKU to what the seller lists (``Price``, ``SalePrice`` when on sale,
    ``Quantity``, which an order takes from, ``Name``); ``clock`` stamps dates.
    """

    def __init__(
        self,
        products: MutableMapping[str, dict[str, Any]],
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.products = products
        self.clock = clock or (lambda: datetime.now(UTC))
        self.orders: dict[str, dict[str, Any]] = {}
        """OrderId -> the order as GetOrders shows it, without its items."""
        self.items: dict[str, list[dict[str, Any]]] = {}
        """OrderId -> its items as GetOrderItems shows them."""
        self.providers = list(SHIPMENT_PROVIDERS)
        self.reasons = list(FAILURE_REASONS)
        self._numbers = itertools.count(1)
        self._item_ids = itertools.count(5_000_001)
        self.handlers: dict[str, Callable[[Mapping[str, str]], dict[str, Any]]] = {
            "GetOrders": self.get_orders,
            "GetOrder": self.get_order,
            "GetOrderItems": self.get_order_items,
            "SetStatusToPackedByMarketplace": self.packed,
            "SetInvoiceAccessKey": self.invoice_access_key,
            "SetStatusToReadyToShip": self.ready_to_ship,
            "SetStatusToShipped": self.shipped,
            "SetStatusToCanceled": self.canceled,
            "GetShipmentProviders": self.shipment_providers,
            "GetFailureReasons": self.failure_reasons,
        }
        """The order actions by name, each answering the action's parameters (tests replace one)."""

    def actions(self) -> dict[str, ActionHandler]:
        """``Action`` -> handler, for the stand-in's dispatch (each looks its handler up when called)."""

        def handler(action: str) -> ActionHandler:
            async def handle(call: ActionCall) -> dict[str, Any]:
                return self.handlers[action](call.params)

            return handle

        return {action: handler(action) for action in self.handlers}

    def routes(self) -> list[Route]:
        """The sandbox's controls, for the stand-in's app (the API itself is :meth:`handle`)."""
        return [
            sandbox_route("orders", self.sandbox_order),
            sandbox_route("orders/{order_id}/status", self.sandbox_status),
        ]

    # -- orders: made by tests and the sandbox ---------------------------------------------------

    def create_order(
        self,
        sku: str,
        quantity: int = 1,
        unit_price: Decimal | int | str | None = None,
        *,
        status: str = "pending",
        order_id: str | None = None,
        shipping_amount: Decimal | int | str = "9.90",
    ) -> str:
        """A customer's order of ``quantity`` units of one product (one item each); its OrderId.

        ``unit_price`` defaults to what the shop lists (the sale price when there is one); any
        other makes a divergent order. The units leave the product's stock, stopping at 0.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise ValueError("quantity must be a whole number of at least 1")
        product = self.products.get(sku)
        if product is None:
            raise ValueError(f"the seller has no product with SellerSku {sku}")
        listed = product.get("SalePrice") or product["Price"]  # what the customer pays today
        price = Decimal(str(unit_price if unit_price is not None else listed))
        if not price.is_finite() or price <= 0:
            raise ValueError("unit_price must be greater than 0")
        number = next(self._numbers)
        key = order_id or str(3_000_000 + number)
        if key in self.orders:
            raise ValueError(f"order {key} exists already")
        stock = str(product.get("Quantity", ""))
        if stock.isdigit():
            product["Quantity"] = str(max(0, int(stock) - quantity))
        now = self._stamp()
        first, last = CUSTOMERS[number % len(CUSTOMERS)]
        street, more, district, city, region, post_code = ADDRESSES[number % len(ADDRESSES)]
        address = {"FirstName": first, "LastName": last, "Phone": "11999990000", "Address1": street,
                   "Address2": more, "Address3": district, "City": city, "Region": region,
                   "PostCode": post_code, "Country": "Brazil"}  # fmt: skip
        shipping = Decimal(str(shipping_amount))
        self.items[key] = [
            self._item(key, sku, price, shipping if n == 0 else Decimal(0), status, now)
            for n in range(quantity)
        ]
        self.orders[key] = {
            "OrderId": key,
            "OrderNumber": str(20_260_000 + number),
            "CustomerFirstName": first,
            "CustomerLastName": last,
            "NationalRegistrationNumber": "12345678909",
            "PaymentMethod": "CreditCard",
            "Remarks": "",
            "DeliveryInfo": "",
            "GiftOption": "0",
            "GiftMessage": "",
            "CreatedAt": now,
            "UpdatedAt": now,
            "AddressBilling": dict(address),
            "AddressShipping": address,
            "Price": _money(price * quantity + shipping),
            "ItemsCount": str(quantity),
            "Statuses": {"Status": [status]},
        }
        return key

    def set_status(self, order_id: str, status: str) -> None:
        """Move every item not ended, as the customer or Dafiti would (``canceled``, ``delivered``...)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        for item in self.items[order_id]:
            if item["Status"] not in ENDED:
                self._move(item, status)

    def order_items(self, order_id: str) -> list[dict[str, Any]]:
        """The order's items as the stand-in holds them (KeyError when unknown)."""
        return self.items[order_id]

    # -- reading -----------------------------------------------------------------------------------

    def get_orders(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Orders filtered by dates and ``Status``, sorted, then ``Offset``/``Limit``."""
        found = list(self.orders.values())
        for name, field, code in (
            ("CreatedAfter", "CreatedAt", "E046"),
            ("CreatedBefore", "CreatedAt", "E046"),
            ("UpdatedAfter", "UpdatedAt", "E047"),
            ("UpdatedBefore", "UpdatedAt", "E047"),
        ):
            moment = _moment(params, name, code)
            if moment is not None:
                after = name.endswith("After")
                found = [
                    o for o in found if (_local(o[field]) > moment) == after and _local(o[field]) != moment
                ]
        status = params.get("Status")
        if status:
            if status not in STATUSES:
                raise ActionRefused("E001", f"Invalid Status: {status}")
            found = [o for o in found if status in self._statuses(o["OrderId"])]
        sort = {"created_at": "CreatedAt", "updated_at": "UpdatedAt"}.get(params.get("SortBy", "created_at"))
        direction = params.get("SortDirection", "ASC")
        if sort is None or direction not in ("ASC", "DESC"):
            raise ActionRefused("E001", "SortBy must be created_at or updated_at, SortDirection ASC or DESC")
        found.sort(key=lambda o: (_local(o[sort]), int(o["OrderId"])), reverse=direction == "DESC")
        offset = _whole(params, "Offset", 0, "E014", "Invalid Offset")
        limit = _whole(params, "Limit", LIMIT_MAX, "E015", "Invalid Limit")
        if not 1 <= limit <= LIMIT_MAX:
            raise ActionRefused("E015", f"Invalid Limit: from 1 to {LIMIT_MAX}")
        return {"Orders": {"Order": [self._shown(o) for o in found[offset : offset + limit]]}}

    def get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {"Orders": {"Order": [self._shown(self._order(params))]}}

    def get_order_items(self, params: Mapping[str, str]) -> dict[str, Any]:
        order = self._order(params)
        return {"OrderItems": {"OrderItem": [dict(item) for item in self.items[order["OrderId"]]]}}

    def shipment_providers(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {"ShipmentProviders": {"ShipmentProvider": [{"Name": name} for name in self.providers]}}

    def failure_reasons(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {"Reasons": {"Reason": [{"Type": kind, "Name": name} for kind, name in self.reasons]}}

    # -- item transitions ---------------------------------------------------------------------------

    def packed(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Pending items get a purchase order and a package (already packed ones keep theirs)."""
        items = self._items(params, "OrderItemIds")
        self._delivery(params)
        for item in items:
            self._allowed(item, ("pending",), "packed by marketplace")
        answered = []
        for item in items:
            if not item["PurchaseOrderId"]:
                number = item["OrderItemId"]
                item.update(
                    PurchaseOrderId=f"PO{number}", PurchaseOrderNumber=f"{number}-1", PackageId=f"PK{number}"
                )
                item["ShipmentProvider"] = params["ShippingProvider"]
                self._touch(item)
            answered.append(
                {k: item[k] for k in ("OrderItemId", "PurchaseOrderId", "PurchaseOrderNumber", "PackageId")}
            )
        return {"OrderItems": {"OrderItem": answered}}

    def invoice_access_key(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The NF-e's access key (44 digits), number and date on each item not ended."""
        items = self._items(params, "OrderItemIds" if "OrderItemIds" in params else "OrderItemId")
        key = params.get("InvoiceAccessKey", "")
        if len(key) != NFE_KEY_DIGITS or not key.isdigit():
            raise ActionRefused("E001", f"InvoiceAccessKey must be {NFE_KEY_DIGITS} digits")
        if params.get("InvoiceDate"):
            _moment(params, "InvoiceDate", "E001")
        for item in items:
            self._allowed(item, ("pending", "ready_to_ship", "shipped", "delivered"), "invoiced")
        for item in items:
            item.update(InvoiceAccessKey=key, InvoiceNumber=params.get("InvoiceNumber", ""),
                        InvoiceDate=params.get("InvoiceDate", ""))  # fmt: skip
            self._touch(item)
        return {}

    def ready_to_ship(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Packed pending items with an NF-e key become ``ready_to_ship`` with their tracking number."""
        items = self._items(params, "OrderItemIds")
        self._delivery(params)
        tracking = params.get("TrackingNumber", "").strip()
        if not tracking:
            raise ActionRefused("E001", "Parameter TrackingNumber is mandatory")
        for item in items:
            self._allowed(item, ("pending",), "ready_to_ship")
            if not item["PurchaseOrderId"]:
                raise ActionRefused("E028", f"Order item {item['OrderItemId']} is not packed yet")
            if not item["InvoiceAccessKey"]:
                raise ActionRefused("E028", f"Order item {item['OrderItemId']} has no invoice access key")
        for item in items:
            item.update(TrackingCode=tracking, ShipmentProvider=params["ShippingProvider"])
            self._move(item, "ready_to_ship")
        return {}

    def shipped(self, params: Mapping[str, str]) -> dict[str, Any]:
        (item,) = self._items(params, "OrderItemId")
        self._allowed(item, ("ready_to_ship",), "shipped")
        self._move(item, "shipped")
        return {}

    def canceled(self, params: Mapping[str, str]) -> dict[str, Any]:
        """A pending item canceled with a ``Reason`` GetFailureReasons lists as ``canceled``."""
        (item,) = self._items(params, "OrderItemId")
        reason = params.get("Reason", "")
        if (("canceled", reason)) not in self.reasons:
            raise ActionRefused("E022", f"Invalid Reason: {reason}")
        self._allowed(item, ("pending",), "canceled")
        item.update(Reason=reason, ReasonDetail=params.get("ReasonDetail", ""))
        self._move(item, "canceled")
        return {}

    # -- the sandbox's controls ----------------------------------------------------------------------

    async def sandbox_order(self, request: Request) -> Response:
        """``POST /_sandbox/orders`` ``{sku_id, quantity?, unit_price?, status?, order_id?}``."""
        body = await json_or_none(request)
        known = {"sku_id", "quantity", "unit_price", "status", "order_id"}
        if not isinstance(body, dict) or set(body) - known or not isinstance(body.get("sku_id"), str | int):
            return _refused(f"give a JSON object with sku_id and only {', '.join(sorted(known))}")
        try:
            order_id = self.create_order(
                str(body["sku_id"]),
                body.get("quantity", 1),
                body.get("unit_price"),
                status=str(body.get("status", "pending")),
                order_id=body.get("order_id"),
            )
        except (ValueError, ArithmeticError) as refused:
            return _refused(str(refused))
        return exact_json({"order_id": order_id}, 201)

    async def sandbox_status(self, request: Request) -> Response:
        """``POST /_sandbox/orders/{id}/status`` ``{status}``: every item not ended moves there."""
        order_id = str(request.path_params["order_id"])
        if order_id not in self.orders:
            return _refused(f"Invalid Order ID: {order_id}", "E016", 404)
        body = await json_or_none(request)
        try:
            self.set_status(order_id, str(body.get("status") if isinstance(body, dict) else None))
        except ValueError as refused:
            return _refused(str(refused))
        return exact_json({"order_id": order_id, "statuses": self._statuses(order_id)})

    # -- state -----------------------------------------------------------------------------------

    def _item(
        self, order_id: str, sku: str, price: Decimal, shipping: Decimal, status: str, now: str
    ) -> dict[str, Any]:
        item_id = str(next(self._item_ids))
        product = self.products[sku]
        return {
            "OrderItemId": item_id,
            "OrderId": order_id,
            "ShopId": f"DF{item_id}",
            "Name": str(product.get("Name") or f"Produto {sku}"),
            "Sku": sku,
            "ShopSku": f"{sku}DF-{order_id}",
            "ShippingType": "Dropshipping",
            "ItemPrice": _money(price),
            "PaidPrice": _money(price),
            "Currency": "BRL",
            "TaxAmount": _money(Decimal(0)),
            "ShippingAmount": _money(shipping),
            "VoucherAmount": _money(Decimal(0)),
            "Status": status,
            "ShipmentProvider": "",
            "TrackingCode": "",
            "Reason": "",
            "ReasonDetail": "",
            "PurchaseOrderId": "",
            "PurchaseOrderNumber": "",
            "PackageId": "",
            "InvoiceAccessKey": "",
            "InvoiceNumber": "",
            "InvoiceDate": "",
            "CreatedAt": now,
            "UpdatedAt": now,
        }

    def _order(self, params: Mapping[str, str]) -> dict[str, Any]:
        order_id = params.get("OrderId", "")
        if order_id not in self.orders:
            raise ActionRefused("E016", f"Invalid Order ID: {order_id}")
        return self.orders[order_id]

    def _items(self, params: Mapping[str, str], name: str) -> list[dict[str, Any]]:
        """The items a call names: ``OrderItemIds`` as a JSON array of ids, ``OrderItemId`` alone."""
        value = params.get(name)
        if not value:
            raise ActionRefused("E001", f"Parameter {name} is mandatory")
        if name == "OrderItemIds":
            try:
                ids = json.loads(value)
            except ValueError:
                ids = None
            if not isinstance(ids, list) or not ids:
                raise ActionRefused("E001", "OrderItemIds must be a JSON array of ids")
        else:
            ids = [value]
        by_id = {item["OrderItemId"]: item for items in self.items.values() for item in items}
        unknown = [str(i) for i in ids if str(i) not in by_id]
        if unknown:
            raise ActionRefused("E020", f"Invalid OrderItemId: {unknown[0]}")
        return [by_id[str(i)] for i in dict.fromkeys(ids)]

    def _delivery(self, params: Mapping[str, str]) -> None:
        if params.get("DeliveryType") not in DELIVERY_TYPES:
            raise ActionRefused("E001", f"DeliveryType must be one of {', '.join(sorted(DELIVERY_TYPES))}")
        if params.get("ShippingProvider") not in self.providers:
            raise ActionRefused("E001", f"Invalid ShippingProvider: {params.get('ShippingProvider')}")

    @staticmethod
    def _allowed(item: Mapping[str, Any], statuses: Iterable[str], target: str) -> None:
        if item["Status"] not in statuses:
            raise ActionRefused(
                "E028",
                f"It is not possible to set the order item {item['OrderItemId']} to the status {target} "
                f"from {item['Status']}",
            )

    def _move(self, item: dict[str, Any], status: str) -> None:
        item["Status"] = status
        self._touch(item)

    def _touch(self, item: dict[str, Any]) -> None:
        now = self._stamp()
        item["UpdatedAt"] = now
        order = self.orders[item["OrderId"]]
        order["UpdatedAt"] = now
        order["Statuses"] = {"Status": self._statuses(order["OrderId"])}

    def _statuses(self, order_id: str) -> list[str]:
        return list(dict.fromkeys(item["Status"] for item in self.items[order_id]))

    def _shown(self, order: Mapping[str, Any]) -> dict[str, Any]:
        return {**order, "Statuses": {"Status": self._statuses(order["OrderId"])}}

    def _stamp(self) -> str:
        return self.clock().astimezone(ZONE).strftime("%Y-%m-%d %H:%M:%S")


# -- helpers -------------------------------------------------------------------------------------------


def _refused(message: str, code: str = "E001", status: int = 400) -> Response:
    """A sandbox control's refusal, as an ErrorResponse in JSON."""
    return exact_json(error_envelope("", code, message), status)


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _local(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZONE)


def _moment(params: Mapping[str, str], name: str, code: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return aware_time(value.replace("Z", "+00:00"))
    except ValueError:
        raise ActionRefused(code, f"Invalid {name}: an ISO 8601 date with an offset is expected") from None


def _whole(params: Mapping[str, str], name: str, default: int, code: str, message: str) -> int:
    value = params.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise ActionRefused(code, message)
    return int(value)
