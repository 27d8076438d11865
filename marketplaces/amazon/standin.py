"""A stand-in for Amazon SP-API: Login with Amazon, Listings Items 2021-08-01, feeds and orders.

It answers the way the real API does where the engine's correctness depends on it:

* tokens: ``POST /auth/o2/token`` swaps the refresh token for an access token that expires;
  a Listings or Feeds call without a live ``x-amz-access-token`` of its own is 403;
* request shape: malformed JSON, a body missing ``productType``/``attributes``/``patches``, no
  ``marketplaceIds`` or a non-JSON content type are 400/415 in Amazon's ``{"errors": [...]}``;
* listing rules: what Amazon rejects after reading the body (a required attribute missing, a
  value of the wrong shape, another marketplace's id, a bad GTIN check digit, a sale price not
  below the price, a currency the marketplace does not use, a PATCH of an unknown SKU) is a 200
  with status INVALID and ERROR issues, and nothing is stored;
* asynchronous failure: a seeded share of accepted PUTs (``accepted_then_invalid_rate``) later
  shows an ERROR issue on GET, as Amazon's catalog matching does minutes after accepting;
* feeds: a document is created, uploaded to a presigned URL (served here under ``/_uploads``),
  queued, processed after a poll or two against the same items, and reported per message in
  the processing-report-v2 shape (with the items' issues when the header asks for them);
* orders: ``searchOrders``/``getOrder`` of Orders 2026-01-01 (the sections ``includedData`` asks
  for, keyset pagination, the parameter rules of the spec), ``confirmShipment`` of Orders v0
  (204; a repeat of the same ``packageReferenceId`` is accepted and changes nothing, shipping
  more than is left unshipped is 400), and cancellation by a ``POST_ORDER_ACKNOWLEDGEMENT_DATA``
  XML feed with an XML processing report. Orders come from :meth:`AmazonStandin.create_order`
  (or ``POST /_sandbox/orders``) for a listed SKU, priced as the listing is, so a test or a
  sandbox user plays the buyer.

Issue codes 90220 (required attribute) and 99022 (too few values) are Amazon's; the stand-in's
own checks use codes in the 4000000 range, which Amazon does not document.
"""

from __future__ import annotations

import base64
import copy
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine._jsonio import dumps, loads
from marketplaces._standin import SANDBOX_PREFIX, Faults, Standin

ERROR_CODES = {
    400: "InvalidInput",
    403: "Unauthorized",
    404: "NotFound",
    415: "UnsupportedMediaType",
    429: "QuotaExceeded",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}
CURRENCIES = {
    "ATVPDKIKX0DER": "USD",
    "A2EUQ1WTGCTBG2": "CAD",
    "A1AM78C64UM0Y8": "MXN",
    "A2Q3Y263D00KWC": "BRL",
}
CONDITIONS = frozenset(
    {"new_new", "new_open_box", "new_oem", "refurbished_refurbished", "used_like_new", "used_very_good"}
    | {"used_good", "used_acceptable", "collectible_like_new", "collectible_very_good", "collectible_good"}
    | {"collectible_acceptable", "club_club"}
)
INCLUDED_DATA = frozenset(
    {"summaries", "attributes", "issues", "offers", "fulfillmentAvailability", "procurement"}
    | {"relationships", "productTypes"}
)
TEXT_ATTRIBUTES = ("item_name", "brand", "bullet_point", "product_description")
"""Localized text Amazon requires a ``value`` and a ``language_tag`` for."""
PRODUCT_FACTS = ("item_name", "brand", "condition_type", "main_product_image_locator")
IDENTIFIERS = (
    "externally_assigned_product_identifier",
    "supplier_declared_has_product_identifier_exemption",
    "merchant_suggested_asin",
)
SALES_TERMS = ("condition_type", "purchasable_offer")

MISSING, TOO_FEW, UNKNOWN_SKU, INVALID_VALUE, INVALID_MESSAGE, UNKNOWN_ORDER, ORDER_SHIPPED = (
    "90220",
    "99022",
    "4000001",
    "4000002",
    "4000003",
    "4000004",
    "4000005",
)
LATE_ISSUE = {
    "code": "8541",
    "message": "The product identifier conflicts with the Amazon catalog: the listing was suppressed "
    "after it was accepted. Check externally_assigned_product_identifier and resubmit.",
    "severity": "ERROR",
    "attributeNames": ["externally_assigned_product_identifier"],
    "categories": ["INVALID_ATTRIBUTE"],
}
"""What a listing shows when Amazon refuses it after accepting the submission."""

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
FEED_TYPES = frozenset({"JSON_LISTINGS_FEED", ACKNOWLEDGEMENT_FEED})
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

Issue = dict[str, Any]


class AmazonStandin(Standin):
    """Amazon's listing and feed APIs in memory; ``items`` is the seller's inventory, by SKU."""

    name = "amazon"

    def __init__(
        self,
        *,
        client_id: str = "amzn1.application-oa2-client.standin",
        client_secret: str = "standin-client-secret",
        refresh_token: str = "Atzr|standin-refresh-token",
        seller_id: str = "A1SELLER",
        marketplace_ids: Iterable[str] = ("ATVPDKIKX0DER",),
        token_lifetime: float = 3600.0,
        accepted_then_invalid_rate: float = 0.0,
        fatal_feed_rate: float = 0.0,
        feed_polls: int = 2,
        seed: int = 0,
        rate_limit: float | None = None,
        burst: float | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.client_id, self.client_secret, self.refresh_token = client_id, client_secret, refresh_token
        self.seller_id = seller_id
        self.marketplace_ids = frozenset(marketplace_ids)
        self.token_lifetime = token_lifetime
        self.accepted_then_invalid_rate = accepted_then_invalid_rate
        self.fatal_feed_rate = fatal_feed_rate
        self.feed_polls = max(1, feed_polls)
        self.outcomes = random.Random(seed)
        """Draws for late failures and fatal feeds, apart from the base's fault draws."""
        self.clock = time.monotonic
        """When issued tokens expire; tests move it forward."""
        self.items: dict[str, dict[str, Any]] = {}
        """SKU -> {productType, requirements, attributes, status, issues, createdDate, lastUpdatedDate}."""
        self.late_failures: set[str] = set()
        """SKUs accepted, then given an ERROR issue (the asynchronous failure the engine must catch)."""
        self.tokens: dict[str, float] = {}
        self.documents: dict[str, dict[str, Any]] = {}
        self.feeds: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        """Order id -> the Orders 2026-01-01 ``Order`` with every section; views drop what is not asked."""
        self.order_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """Stamps createdTime and lastUpdatedTime; tests move it to separate changes in time."""
        self.buyers = random.Random(seed)
        """Draws invented buyers and item ids, apart from the other draws."""
        self.order_ids = random.Random()
        """Order ids are not seeded: a sandbox restarted against the same project must not hand out
        ids its state store already holds for other orders."""
        self._serial = 0
        super().__init__(rate_limit, burst, faults)

    def build(self) -> Starlette:
        listings = "/listings/2021-08-01/items/{seller_id}/{sku:path}"
        return Starlette(
            routes=[
                Route("/auth/o2/token", self.issue_token, methods=["POST"]),
                Route(listings, self.listings_item, methods=["GET", "PUT", "PATCH", "DELETE"]),
                Route("/feeds/2021-06-30/documents", self.create_feed_document, methods=["POST"]),
                Route("/feeds/2021-06-30/documents/{document_id}", self.get_feed_document, methods=["GET"]),
                Route("/feeds/2021-06-30/feeds", self.create_feed, methods=["POST"]),
                Route("/feeds/2021-06-30/feeds/{feed_id}", self.get_feed, methods=["GET"]),
                Route("/_uploads/{document_id}", self.upload, methods=["PUT"]),
                Route("/_downloads/{document_id}", self.download, methods=["GET"]),
                Route("/orders/2026-01-01/orders", self.search_orders, methods=["GET"]),
                Route("/orders/2026-01-01/orders/{order_id}", self.get_order, methods=["GET"]),
                Route(
                    "/orders/v0/orders/{order_id}/shipmentConfirmation",
                    self.confirm_shipment,
                    methods=["POST"],
                ),
                Route(f"{SANDBOX_PREFIX}orders", self.sandbox_create_order, methods=["POST"]),
                Route(
                    f"{SANDBOX_PREFIX}orders/{{order_id}}/status", self.sandbox_order_status, methods=["POST"]
                ),
            ]
        )

    def error_body(self, status: int, message: str) -> Any:
        return {"errors": [{"code": ERROR_CODES.get(status, "InvalidInput"), "message": message}]}

    # -- Login with Amazon -------------------------------------------------------------------

    async def issue_token(self, request: Request) -> Response:
        form = {key: values[0] for key, values in parse_qs((await request.body()).decode("utf-8")).items()}
        if form.get("grant_type") != "refresh_token":
            return _lwa_error(400, "unsupported_grant_type", "Only the refresh_token grant is supported")
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return _lwa_error(401, "invalid_client", "Client authentication failed")
        if form.get("refresh_token") != self.refresh_token:
            return _lwa_error(
                400, "invalid_grant", "The request has an invalid grant parameter : refresh_token"
            )
        token = f"Atza|standin-{self._next():06d}"
        self.tokens[token] = self.clock() + self.token_lifetime
        body = {"access_token": token, "token_type": "bearer", "expires_in": int(self.token_lifetime)}
        return _json({**body, "refresh_token": self.refresh_token})

    def _denied(self, request: Request, seller_id: str | None = None) -> Response | None:
        token = request.headers.get("x-amz-access-token")
        expires = self.tokens.get(token or "")
        if expires is None:
            why = "The access token you provided is revoked, malformed or invalid."
            return self._error(
                403, "Access to requested resource is denied.", why if token else "No access token."
            )
        if self.clock() >= expires:
            return self._error(
                403, "Access to requested resource is denied.", "The access token you provided has expired."
            )
        if seller_id is not None and seller_id != self.seller_id:
            return self._error(
                403, "Access to requested resource is denied.", f"Seller {seller_id} is not yours."
            )
        return None

    # -- Listings Items ------------------------------------------------------------------------

    async def listings_item(self, request: Request) -> Response:
        seller_id, sku = request.path_params["seller_id"], request.path_params["sku"]
        denied = self._denied(request, seller_id)
        if denied is not None:
            return denied
        marketplaces = [m for m in request.query_params.get("marketplaceIds", "").split(",") if m]
        if not marketplaces:
            return self._error(400, "Missing required 'marketplaceIds' query parameter.")
        unknown = sorted(set(marketplaces) - self.marketplace_ids)
        if unknown:
            return self._error(
                400, f"Invalid 'marketplaceIds': {', '.join(unknown)} is not available to you."
            )
        if request.method == "GET":
            return self._get_item(sku, request.query_params.get("includedData", "summaries"), marketplaces)
        if request.method == "DELETE":
            self.items.pop(sku, None)  # deleting what is gone is accepted: a retry must not fail
            self.late_failures.discard(sku)
            return self._submission(sku, [])
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self._error(415, "The request body must be application/json.")
        try:
            body = loads(await request.body())
        except ValueError as exc:
            return self._error(400, f"Malformed request body: {exc}")
        preview = request.query_params.get("mode") == "VALIDATION_PREVIEW"
        if request.method == "PUT":
            malformed = _put_request_errors(body)
            if malformed:
                return self._error(400, malformed)
            issues = self._put(sku, body, marketplaces, preview)
        else:
            malformed = _patch_request_errors(body)
            if malformed:
                return self._error(400, malformed)
            issues = self._patch(sku, body, marketplaces, preview)
        return self._submission(sku, issues, preview)

    def _get_item(self, sku: str, included: str, marketplaces: list[str]) -> Response:
        wanted = [name for name in included.split(",") if name]
        unknown = sorted(set(wanted) - INCLUDED_DATA)
        if unknown:
            return self._error(400, f"Invalid 'includedData': {', '.join(unknown)}.")
        item = self.items.get(sku)
        if item is None:
            return self._error(404, f"SKU '{sku}' not found in marketplace {marketplaces[0]}.")
        return _json(self._view(sku, item, wanted, marketplaces[0]))

    def _put(self, sku: str, body: Mapping[str, Any], marketplaces: list[str], preview: bool) -> list[Issue]:
        requirements = str(body.get("requirements") or "LISTING")
        issues = listing_issues(body["attributes"], requirements, marketplaces)
        if not preview and not _has_error(issues):
            self._store(sku, str(body["productType"]), requirements, dict(body["attributes"]))
        return issues

    def _patch(
        self, sku: str, body: Mapping[str, Any], marketplaces: list[str], preview: bool
    ) -> list[Issue]:
        item = self.items.get(sku)
        if item is None:
            return [_issue(UNKNOWN_SKU, f"SKU '{sku}' does not exist; create it with putListingsItem first.")]
        if body["productType"] != item["productType"]:
            why = f"productType '{body['productType']}' does not match the listing's '{item['productType']}'."
            return [_issue(INVALID_VALUE, why)]
        attributes, issues = apply_patches(item["attributes"], body["patches"])
        changed = {str(p["path"]).removeprefix("/attributes/") for p in body["patches"]}
        issues += attribute_issues({k: v for k, v in attributes.items() if k in changed}, marketplaces)
        if not preview and not _has_error(issues):
            item["attributes"] = attributes
            item["lastUpdatedDate"] = _now()
        return issues

    def _store(self, sku: str, product_type: str, requirements: str, attributes: dict[str, Any]) -> None:
        """A full replace; a seeded share is refused later, as Amazon's catalog checks do."""
        created = self.items.get(sku, {}).get("createdDate") or _now()
        late = self.outcomes.random() < self.accepted_then_invalid_rate
        self.items[sku] = {
            "productType": product_type,
            "requirements": requirements,
            "attributes": attributes,
            "issues": [dict(LATE_ISSUE)] if late else [],
            "createdDate": created,
            "lastUpdatedDate": _now(),
        }
        if late:
            self.late_failures.add(sku)
        else:
            self.late_failures.discard(sku)

    def _submission(self, sku: str, issues: list[Issue], preview: bool = False) -> Response:
        status = "INVALID" if _has_error(issues) else "VALID" if preview else "ACCEPTED"
        submission = str(uuid.UUID(int=self._next()))
        return _json({"sku": sku, "status": status, "submissionId": submission, "issues": issues})

    def _view(
        self, sku: str, item: Mapping[str, Any], wanted: Iterable[str], marketplace: str
    ) -> dict[str, Any]:
        """``Item`` of getListingsItem: what ``includedData`` asked for."""
        view: dict[str, Any] = {"sku": sku}
        attributes = item["attributes"]
        for name in wanted:
            if name == "summaries":
                view["summaries"] = [_summary(sku, item, marketplace)]
            elif name == "attributes":
                view["attributes"] = attributes
            elif name == "issues":
                view["issues"] = item["issues"]
            elif name == "fulfillmentAvailability":
                view[name] = [
                    {
                        "fulfillmentChannelCode": entry.get("fulfillment_channel_code"),
                        "quantity": entry.get("quantity"),
                    }
                    for entry in attributes.get("fulfillment_availability") or []
                ]
        return view

    # -- Feeds ---------------------------------------------------------------------------------

    async def create_feed_document(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("contentType"), str):
            return self._error(400, "Missing required 'contentType'.")
        document_id = f"amzn1.tortuga.4.na.{uuid.UUID(int=self._next())}"
        self.documents[document_id] = {"contentType": body["contentType"], "content": None}
        url = f"{str(request.base_url).rstrip('/')}/_uploads/{document_id}"
        return _json({"feedDocumentId": document_id, "url": url}, 201)

    async def upload(self, request: Request) -> Response:
        """The presigned upload URL: no access token, the document id is the permission."""
        document = self.documents.get(request.path_params["document_id"])
        if document is None:
            return self._error(404, "No such upload URL.")
        document["content"] = await request.body()
        return Response(status_code=200)

    async def download(self, request: Request) -> Response:
        document = self.documents.get(request.path_params["document_id"])
        if document is None or document["content"] is None:
            return self._error(404, "No such document.")
        return Response(document["content"], media_type=document["contentType"])

    async def create_feed(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        body = await _body(request)
        if not isinstance(body, dict):
            return self._error(400, "The request body must be a JSON object.")
        for name in ("feedType", "marketplaceIds", "inputFeedDocumentId"):
            if not body.get(name):
                return self._error(400, f"Missing required '{name}'.")
        if body["feedType"] not in FEED_TYPES:
            return self._error(400, f"Feed type {body['feedType']} is not supported by this stand-in.")
        unknown = sorted(set(body["marketplaceIds"]) - self.marketplace_ids)
        if unknown:
            return self._error(400, f"Invalid 'marketplaceIds': {', '.join(unknown)}.")
        document = self.documents.get(str(body["inputFeedDocumentId"]))
        if document is None or document["content"] is None:
            return self._error(400, f"Feed document {body['inputFeedDocumentId']} has no uploaded content.")
        feed_id = str(50_000_000_000 + self._next())
        self.feeds[feed_id] = {
            "feedId": feed_id,
            "feedType": body["feedType"],
            "marketplaceIds": list(body["marketplaceIds"]),
            "createdTime": _now(),
            "processingStatus": "IN_QUEUE",
            "polls": 0,
            "input": document["content"],
        }
        return _json({"feedId": feed_id}, 202)

    async def get_feed(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        feed = self.feeds.get(request.path_params["feed_id"])
        if feed is None:
            return self._error(404, "Feed not found.")
        if feed["processingStatus"] in ("IN_QUEUE", "IN_PROGRESS"):
            feed["polls"] += 1
            if feed["polls"] >= self.feed_polls:
                self._process(feed)
            else:
                feed["processingStatus"] = "IN_PROGRESS"
        return _json({k: v for k, v in feed.items() if k not in ("polls", "input")})

    async def get_feed_document(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        document_id = request.path_params["document_id"]
        if document_id not in self.documents:
            return self._error(404, "Feed document not found.")
        url = f"{str(request.base_url).rstrip('/')}/_downloads/{document_id}"
        return _json({"feedDocumentId": document_id, "url": url})

    def _process(self, feed: dict[str, Any]) -> None:
        """Apply the feed's messages to the items, and write the processing report."""
        if feed["feedType"] == ACKNOWLEDGEMENT_FEED:
            status, report = self._acknowledge(feed["input"])
            self._store_report(feed, status, report, "text/xml; charset=UTF-8")
            return
        header: dict[str, Any] = {"sellerId": self.seller_id, "version": "2.0", "feedId": feed["feedId"]}
        document, fatal = _read_document(feed["input"], self.seller_id)
        if document is not None and self.outcomes.random() < self.fatal_feed_rate:
            document, fatal = None, "The feed could not be processed because of an internal error (injected)."
        if document is None:
            issue = {"severity": "ERROR", "code": INVALID_MESSAGE, "message": fatal}
            counts = {"errors": 1, "warnings": 0, "messagesProcessed": 0, "messagesAccepted": 0}
            self._finish(
                feed,
                "FATAL",
                {"header": header, "issues": [issue], "summary": {**counts, "messagesInvalid": 0}},
            )
            return
        self._finish(feed, "DONE", self._report(header, document, feed["marketplaceIds"]))

    def _report(
        self, header: dict[str, Any], document: dict[str, Any], marketplaces: list[str]
    ) -> dict[str, Any]:
        """processing-report-v2: per-message issues, counts, and the items when the header asks."""
        issues: list[Issue] = []
        accepted = 0
        for message in document["messages"]:
            found = self._apply_message(message, marketplaces)
            accepted += not _has_error(found)
            for issue in found:
                entry = {"messageId": message.get("messageId"), "sku": message.get("sku")}
                names = issue.get("attributeNames") or []
                extra = {"attributeName": names[0]} if names else {}
                issues.append(
                    {
                        **entry,
                        "code": issue["code"],
                        "severity": issue["severity"],
                        "message": issue["message"],
                        **extra,
                    }
                )
        summary: dict[str, Any] = {
            "errors": sum(i["severity"] == "ERROR" for i in issues),
            "warnings": sum(i["severity"] == "WARNING" for i in issues),
            "messagesProcessed": len(document["messages"]),
            "messagesAccepted": accepted,
            "messagesInvalid": len(document["messages"]) - accepted,
        }
        report: dict[str, Any] = {"header": header, "issues": issues, "summary": summary}
        wanted = (document["header"].get("report") or {}).get("includedData")
        if wanted:
            header["report"] = document["header"]["report"]
            skus = dict.fromkeys(str(m.get("sku")) for m in document["messages"])
            items = [
                self._view(sku, self.items[sku], wanted, marketplaces[0]) for sku in skus if sku in self.items
            ]
            item_issues = [i for item in items for i in item.get("issues", [])]
            report["items"] = items
            summary["itemSummary"] = {
                "items": len(items),
                "errors": sum(i["severity"] == "ERROR" for i in item_issues),
                "warnings": sum(i["severity"] == "WARNING" for i in item_issues),
            }
        return report

    def _apply_message(self, message: Any, marketplaces: list[str]) -> list[Issue]:
        """One message, validated like the single call it stands for, then applied."""
        malformed = _message_errors(message)
        if malformed:
            return [_issue(INVALID_MESSAGE, malformed)]
        sku, operation = str(message["sku"]), message["operationType"]
        if operation == "DELETE":
            self.items.pop(sku, None)
            self.late_failures.discard(sku)
            return []
        if operation == "UPDATE":
            return self._put(sku, message, marketplaces, preview=False)
        if operation == "PATCH":
            return self._patch(sku, message, marketplaces, preview=False)
        item = self.items.get(sku)  # PARTIAL_UPDATE: the given attributes replace theirs only
        if item is None:
            return [_issue(UNKNOWN_SKU, f"SKU '{sku}' does not exist; send an UPDATE first.")]
        issues = attribute_issues(message["attributes"], marketplaces)
        if not _has_error(issues):
            item["attributes"] = {**item["attributes"], **message["attributes"]}
        return issues

    def _finish(self, feed: dict[str, Any], status: str, report: dict[str, Any]) -> None:
        self._store_report(feed, status, dumps(report).encode("utf-8"), "application/json")

    def _store_report(self, feed: dict[str, Any], status: str, report: bytes, content_type: str) -> None:
        document_id = f"amzn1.tortuga.4.na.{uuid.UUID(int=self._next())}"
        self.documents[document_id] = {"contentType": content_type, "content": report}
        feed.update(processingStatus=status, resultFeedDocumentId=document_id, processingEndTime=_now())

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
        return _json({**self.error_body(status, message), "message": message}, status)

    def _order_id(self) -> str:
        while True:
            draw = self.order_ids
            order_id = f"{draw.randint(111, 999)}-{draw.randrange(10**7):07d}-{draw.randrange(10**7):07d}"
            if order_id not in self.orders:
                return order_id

    def _order_stamp(self) -> str:
        return _stamp(self.order_clock())

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
        denied = self._denied(request)
        if denied is not None:
            return denied
        search = OrderSearch.parse(request.query_params, self.marketplace_ids)
        if isinstance(search, str):
            return self._error(400, search)
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
        denied = self._denied(request)
        if denied is not None:
            return denied
        included, problem = _included(request.query_params.get("includedData"))
        if problem:
            return self._error(400, problem)
        order_id = request.path_params["order_id"]
        order = self.orders.get(order_id)
        if order is None:
            return self._error(404, f"Order {order_id} not found.", "Check the order id and the seller.")
        return _json({"order": _order_view(order, included)})

    # -- Orders v0: confirmShipment --------------------------------------------------------------

    async def confirm_shipment(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        order_id = request.path_params["order_id"]
        order = self.orders.get(order_id)
        if order is None:
            return self._error(404, f"Order {order_id} not found.")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self._error(415, "The request body must be application/json.")
        body = await _body(request)
        malformed = _confirmation_errors(body, self.marketplace_ids)
        if malformed:
            return self._error(400, malformed)
        detail = body["packageDetail"]
        reference = detail["packageReferenceId"]
        if any(package["packageReferenceId"] == reference for package in order["packages"]):
            return Response(status_code=204)  # the same package again: already recorded, nothing changes
        fulfillment = order["fulfillment"]
        status = fulfillment["fulfillmentStatus"]
        if fulfillment.get("fulfilledBy") == "AMAZON":
            return self._error(
                400, f"Order {order_id} is fulfilled by Amazon; it takes no shipment confirmation."
            )
        if status in ("CANCELLED", "UNFULFILLABLE"):
            return self._error(400, f"Order {order_id} is {status.lower()}; it cannot be shipped.")
        if status in ("PENDING", "PENDING_AVAILABILITY"):
            return self._error(
                400, f"Order {order_id} is {status}: its payment is not authorised, do not ship it."
            )
        lines = {item["orderItemId"]: item for item in order["orderItems"]}
        for entry in detail["orderItems"]:
            line = lines.get(entry["orderItemId"])
            if line is None:
                return self._error(400, f"Order item {entry['orderItemId']} is not in order {order_id}.")
            left = line["fulfillment"]["quantityUnfulfilled"]
            if entry["quantity"] > left:
                why = f"Order item {entry['orderItemId']}: quantity {entry['quantity']} exceeds the {left} "
                return self._error(400, why + "units not yet shipped (already shipped).")
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

    def _acknowledge(self, content: bytes) -> tuple[str, bytes]:
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

    # -- helpers -------------------------------------------------------------------------------

    def _error(self, status: int, message: str, details: str | None = None) -> Response:
        body = self.error_body(status, message)
        if details:
            body["errors"][0]["details"] = details
        return _json(body, status)

    def _next(self) -> int:
        self._serial += 1
        return self._serial


# -- what Amazon checks ------------------------------------------------------------------------


def listing_issues(attributes: Mapping[str, Any], requirements: str, marketplaces: list[str]) -> list[Issue]:
    """A full listing: the required attributes for its requirements set, then each attribute's shape."""
    required = list(SALES_TERMS) if requirements == "LISTING_OFFER_ONLY" else list(PRODUCT_FACTS)
    if requirements == "LISTING":
        required += [name for name in SALES_TERMS if name not in required]
    issues = [
        _issue(MISSING, f"'[{name}]' is required but not supplied.", name, "MISSING_ATTRIBUTE")
        for name in required
        if name not in attributes
    ]
    if requirements != "LISTING_OFFER_ONLY" and not any(name in attributes for name in IDENTIFIERS):
        why = "A product identifier is required: externally_assigned_product_identifier, or a GTIN exemption."
        issues.append(_issue(MISSING, why, IDENTIFIERS[0], "MISSING_ATTRIBUTE"))
    return issues + attribute_issues(attributes, marketplaces)


def attribute_issues(attributes: Mapping[str, Any], marketplaces: list[str]) -> list[Issue]:
    """Each attribute as product type schemas shape it: a list of objects for a requested marketplace."""
    issues: list[Issue] = []
    for name, values in attributes.items():
        if not isinstance(values, list) or not values or not all(isinstance(v, dict) for v in values):
            why = (
                f"The attribute '{name}' does not have enough values: it needs a list of one or more objects."
            )
            issues.append(_issue(TOO_FEW, why, name))
            continue
        for value in values:
            marketplace = value.get("marketplace_id")
            if marketplace is not None and marketplace not in marketplaces:
                why = f"'{name}' is for marketplace {marketplace}, which this request does not name."
                issues.append(_issue(INVALID_VALUE, why, name))
        check = _CHECKS.get(name)
        if check is not None:
            issues += [_issue(INVALID_VALUE, why, name) for value in values for why in check(value)]
        if name in TEXT_ATTRIBUTES:
            for value in values:
                if not isinstance(value.get("value"), str) or not value["value"].strip():
                    issues.append(_issue(MISSING, f"'[{name}]' is required but not supplied.", name))
                if not value.get("language_tag"):
                    issues.append(_issue(INVALID_VALUE, f"'{name}' needs a language_tag.", name))
    return issues


def _offer(value: Mapping[str, Any]) -> list[str]:
    problems = []
    currency, marketplace = value.get("currency"), value.get("marketplace_id")
    if not currency:
        problems.append("purchasable_offer needs a currency.")
    elif marketplace in CURRENCIES and currency != CURRENCIES[marketplace]:
        problems.append(
            f"currency {currency} is not {CURRENCIES[marketplace]}, the currency of {marketplace}."
        )
    price = _schedule_value(value.get("our_price"))
    if price is None or price <= 0:
        problems.append("our_price needs a schedule with a value_with_tax above 0.")
    sale = value.get("discounted_price")
    if sale:
        entry = (
            (sale[0].get("schedule") or [{}])[0]
            if isinstance(sale, list) and isinstance(sale[0], dict)
            else {}
        )
        sale_price = _schedule_value(sale)
        if sale_price is None or (price is not None and sale_price >= price):
            problems.append(f"discounted_price {sale_price} must be below our_price {price}.")
        if not (entry.get("start_at") and entry.get("end_at")):
            problems.append("discounted_price needs start_at and end_at.")
    return problems


def _schedule_value(prices: Any) -> Decimal | None:
    try:
        value = prices[0]["schedule"][0]["value_with_tax"]
    except (TypeError, LookupError):
        return None
    return Decimal(str(value)) if isinstance(value, int | Decimal) and not isinstance(value, bool) else None


def _availability(value: Mapping[str, Any]) -> list[str]:
    problems = []
    if not isinstance(value.get("fulfillment_channel_code"), str):
        problems.append("fulfillment_availability needs a fulfillment_channel_code.")
    quantity = value.get("quantity")
    if quantity is not None and (not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0):
        problems.append(f"quantity {quantity} must be a whole number, 0 or more.")
    return problems


def _identifier(value: Mapping[str, Any]) -> list[str]:
    kind, digits = value.get("type"), str(value.get("value") or "")
    if kind not in ("ean", "upc", "gtin"):
        return [f"'{kind}' is not a product identifier type (ean, upc, gtin)."]
    if (
        not digits.isdigit()
        or len(digits) != {"ean": 13, "upc": 12, "gtin": 14}[kind]
        or not _gtin_ok(digits)
    ):
        return [f"The value '{digits}' is not a valid {kind.upper()}: check its length and check digit."]
    return []


def _condition(value: Mapping[str, Any]) -> list[str]:
    return [] if value.get("value") in CONDITIONS else [f"'{value.get('value')}' is not a condition_type."]


def _image(value: Mapping[str, Any]) -> list[str]:
    location = str(value.get("media_location") or "")
    return [] if location.startswith(("https://", "http://")) else [f"'{location}' is not an image URL."]


_CHECKS = {
    "purchasable_offer": _offer,
    "fulfillment_availability": _availability,
    "externally_assigned_product_identifier": _identifier,
    "condition_type": _condition,
    "main_product_image_locator": _image,
}


def _gtin_ok(digits: str) -> bool:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(reversed(digits[:-1]), 1))
    return (10 - total % 10) % 10 == int(digits[-1])


def apply_patches(attributes: Mapping[str, Any], patches: list[Any]) -> tuple[dict[str, Any], list[Issue]]:
    """JSON Patch on attributes, on a copy: replace/add swap the attribute, merge by selectors, delete."""
    result, issues = copy.deepcopy(dict(attributes)), []
    for patch in patches:
        path = str(patch["path"])
        name = path.removeprefix("/attributes/")
        if not path.startswith("/attributes/") or not name or "/" in name:
            issues.append(_issue(INVALID_VALUE, f"Patch path '{path}' is not /attributes/<attribute name>."))
            continue
        op, value = patch["op"], patch.get("value")
        if op == "delete":
            result.pop(name, None)
        elif op in ("add", "replace"):
            result[name] = value
        else:  # merge: entries for the same marketplace and language replace theirs
            merged = {_selector(v): v for v in result.get(name) or []}
            merged.update({_selector(v): v for v in value or []})
            result[name] = list(merged.values())
    return result, issues


def _selector(value: Any) -> tuple[Any, Any]:
    return (
        (value.get("marketplace_id"), value.get("language_tag")) if isinstance(value, dict) else (None, None)
    )


# -- request shapes (a violation is a 400, not an issue) -----------------------------------------


def _put_request_errors(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a ListingsItemPutRequest object."
    if not isinstance(body.get("productType"), str) or not body["productType"]:
        return "ListingsItemPutRequest: 'productType' is required."
    if not isinstance(body.get("attributes"), dict):
        return "ListingsItemPutRequest: 'attributes' is required and must be an object."
    if body.get("requirements", "LISTING") not in ("LISTING", "LISTING_PRODUCT_ONLY", "LISTING_OFFER_ONLY"):
        return f"ListingsItemPutRequest: 'requirements' {body['requirements']!r} is not a requirements set."
    return None


def _patch_request_errors(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a ListingsItemPatchRequest object."
    if not isinstance(body.get("productType"), str) or not body["productType"]:
        return "ListingsItemPatchRequest: 'productType' is required."
    patches = body.get("patches")
    if not isinstance(patches, list) or not patches:
        return "ListingsItemPatchRequest: 'patches' needs at least one operation."
    for n, patch in enumerate(patches):
        if not isinstance(patch, dict) or patch.get("op") not in ("add", "replace", "merge", "delete"):
            return f"patches[{n}].op must be one of add, replace, merge, delete."
        if not isinstance(patch.get("path"), str):
            return f"patches[{n}].path is required."
        value = patch.get("value")
        if patch["op"] != "delete" and not isinstance(value, list):
            return f"patches[{n}].value must be an array for '{patch['op']}'."
        if isinstance(value, list) and not all(isinstance(v, dict) for v in value):
            return f"patches[{n}].value must be an array of objects."
    return None


def _message_errors(message: Any) -> str | None:
    """listings-feed-message-schema-v2: what each operationType needs and forbids."""
    if not isinstance(message, dict):
        return "A message must be an object."
    if not isinstance(message.get("sku"), str) or not message["sku"]:
        return "A message needs a 'sku'."
    operation = message.get("operationType")
    if operation == "DELETE":
        extra = [k for k in ("requirements", "attributes", "productType", "patches") if k in message]
        return f"DELETE messages take no {', '.join(extra)}." if extra else None
    if operation in ("UPDATE", "PARTIAL_UPDATE"):
        if "patches" in message:
            return f"{operation} messages take attributes, not patches."
        if operation == "PARTIAL_UPDATE" and "requirements" in message:
            return "PARTIAL_UPDATE messages take no requirements."
        if not isinstance(message.get("attributes"), dict) or not message["attributes"]:
            return f"{operation} messages need 'productType' and 'attributes'."
        return _put_request_errors(message)
    if operation == "PATCH":
        if "attributes" in message:
            return "PATCH messages take patches, not attributes."
        return _patch_request_errors(message)
    return f"operationType {operation!r} is not UPDATE, PARTIAL_UPDATE, PATCH or DELETE."


def _read_document(content: bytes, seller_id: str) -> tuple[dict[str, Any] | None, str]:
    """The feed document, or why the whole feed is FATAL."""
    try:
        document = loads(content)
    except ValueError as exc:
        return None, f"The feed document is not valid JSON: {exc}"
    fatal = _document_errors(document, seller_id)
    return (None, fatal) if fatal is not None else (document, "")


def _document_errors(document: Any, seller_id: str) -> str | None:
    """What makes a whole feed FATAL: a header for another seller or version, no messages, duplicates."""
    if not isinstance(document, dict) or not isinstance(document.get("header"), dict):
        return "The feed document needs a header."
    header = document["header"]
    if header.get("sellerId") != seller_id:
        return f"The feed header's sellerId {header.get('sellerId')!r} is not the seller that submitted it."
    if header.get("version") != "2.0":
        return f"Feed version {header.get('version')!r} is not supported; use 2.0."
    messages = document.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= 25_000:
        return "A feed carries 1 to 25000 messages."
    ids = [m.get("messageId") for m in messages if isinstance(m, dict)]
    if len(ids) != len(messages) or not all(isinstance(i, int) and i >= 1 for i in ids):
        return "Every message needs a messageId of 1 or more."
    if len(set(ids)) != len(ids):
        return "messageId values must be unique within a feed."
    return None


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
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


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
        value = _schedule_value(sale)
        if value is not None and start is not None and end is not None and start <= today <= end:
            return value
    return _schedule_value(offer.get("our_price"))


def _schedule_bound(value: Any, end: bool) -> datetime | None:
    """A sale window bound in UTC; a bare date ("2999-12-31") covers that whole day."""
    if not isinstance(value, str):
        return None
    moment = _parse_time(value.replace("Z", "+00:00"))
    if moment is not None:
        return moment
    try:
        day = datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return None
    return day + timedelta(days=1) if end and len(value) == 10 else day


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
    if _parse_time(detail["shipDate"].replace("Z", "+00:00")) is None:
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


def _summary(sku: str, item: Mapping[str, Any], marketplace: str) -> dict[str, Any]:
    attributes = item["attributes"]
    stock = sum(int(a.get("quantity") or 0) for a in attributes.get("fulfillment_availability") or [])
    buyable = not _has_error(item["issues"]) and "purchasable_offer" in attributes and stock > 0
    discoverable = not _has_error(item["issues"])
    summary = {
        "marketplaceId": marketplace,
        "asin": "B0" + uuid.uuid5(uuid.NAMESPACE_URL, sku).hex[:8].upper(),
        "productType": item["productType"],
        "status": (["BUYABLE"] if buyable else []) + (["DISCOVERABLE"] if discoverable else []),
        "createdDate": item["createdDate"],
        "lastUpdatedDate": item["lastUpdatedDate"],
    }
    names = attributes.get("item_name") or [{}]
    if names[0].get("value"):
        summary["itemName"] = names[0]["value"]
    conditions = attributes.get("condition_type") or [{}]
    if conditions[0].get("value"):
        summary["conditionType"] = conditions[0]["value"]
    return summary


def _issue(
    code: str, message: str, attribute: str | None = None, category: str = "INVALID_ATTRIBUTE"
) -> Issue:
    issue: Issue = {"code": code, "message": message, "severity": "ERROR", "categories": [category]}
    if attribute:
        issue["attributeNames"] = [attribute]
    return issue


def _has_error(issues: Iterable[Mapping[str, Any]]) -> bool:
    return any(issue.get("severity") == "ERROR" for issue in issues)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _json(body: Any, status: int = 200) -> Response:
    """JSON with exact decimals: prices read back as they were sent."""
    return Response(dumps(body), status_code=status, media_type="application/json")


def _lwa_error(status: int, error: str, description: str) -> Response:
    return _json({"error": error, "error_description": description}, status)


async def _body(request: Request) -> Any:
    try:
        return loads(await request.body())
    except ValueError:
        return None


__all__ = ["AmazonStandin"]
