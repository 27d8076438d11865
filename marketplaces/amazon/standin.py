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
* searchListingsItems: the seller's SKUs 20 a page at most (``pageSize``), ``nextToken`` to
  the next, never past the first 1,000 of a search (``numberOfResults`` still counts them all),
  sorted and filtered by SKU or creation time, as a seller's read-back needs;
* feeds: a document is created, uploaded to a presigned URL (served here under ``/_uploads``),
  queued, processed after a poll or two against the same items, and reported per message in
  the processing-report-v2 shape (with the items' issues when the header asks for them);
* orders: ``searchOrders``/``getOrder`` of Orders 2026-01-01, ``confirmShipment`` of Orders v0,
  and cancellation by a ``POST_ORDER_ACKNOWLEDGEMENT_DATA`` XML feed; orders come from
  :meth:`AmazonStandin.create_order` (or ``POST /_sandbox/orders``) for a listed SKU.

This module is its listings: tokens, listings and the Feeds API. The orders are a component the
stand-in owns and routes the order endpoints to,
:class:`~marketplaces.amazon._standin_order_desk.OrderDesk`; an acknowledgement feed travels the
Feeds API here and is processed there. The error shape and what both halves read are in
``_standin_shapes.py``.

Issue codes 90220 (required attribute) and 99022 (too few values) are Amazon's; the stand-in's
own checks use codes in the 4000000 range, which Amazon does not document.
"""

from __future__ import annotations

import copy
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.jsonio import dumps, loads
from marketplaces._standin import (
    AccessTokens,
    Faults,
    Refusal,
    Standin,
    answer_refusal,
    form_body,
    int_param,
    look_up,
)
from marketplaces._standin import exact_json as _json
from marketplaces._standin import json_or_none as _body
from marketplaces.amazon._standin_order_desk import ACKNOWLEDGEMENT_FEED, OrderDesk
from marketplaces.amazon._standin_shapes import CURRENCIES, INVALID_MESSAGE, error_body, refused
from marketplaces.amazon._standin_shapes import error as _error
from marketplaces.amazon._standin_shapes import schedule_value as _schedule_value

CONDITIONS = frozenset(
    {"new_new", "new_open_box", "new_oem", "refurbished_refurbished", "used_like_new", "used_very_good"}
    | {"used_good", "used_acceptable", "collectible_like_new", "collectible_very_good", "collectible_good"}
    | {"collectible_acceptable", "club_club"}
)
SEARCH_PAGE_MAX = 20
"""``pageSize`` maximum of searchListingsItems."""
SEARCH_REACH = 1000
"""SKUs one search can page through (``ItemSearchResults.numberOfResults``)."""
IDENTIFIERS_MAX = 20
"""``identifiers`` a searchListingsItems takes at most."""
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

MISSING, TOO_FEW, UNKNOWN_SKU, INVALID_VALUE = ("90220", "99022", "4000001", "4000002")
"""Amazon's codes for a required attribute and too few values, then the stand-in's own (4000003,
INVALID_MESSAGE, is in ``_standin_shapes.py``; 4000004 and up are the order desk's)."""
LATE_ISSUE = {
    "code": "8541",
    "message": "The product identifier conflicts with the Amazon catalog: the listing was suppressed "
    "after it was accepted. Check externally_assigned_product_identifier and resubmit.",
    "severity": "ERROR",
    "attributeNames": ["externally_assigned_product_identifier"],
    "categories": ["INVALID_ATTRIBUTE"],
}
"""What a listing shows when Amazon refuses it after accepting the submission."""
FEED_TYPES = frozenset({"JSON_LISTINGS_FEED", ACKNOWLEDGEMENT_FEED})
GRANT_REFUSALS = {
    "unsupported_grant_type": (400, "Only the refresh_token grant is supported"),
    "invalid_client": (401, "Client authentication failed"),
    "invalid_grant": (400, "The request has an invalid grant parameter : refresh_token"),
}
"""What Login with Amazon answers for each OAuth error of a refused grant: its status and description."""

Issue = dict[str, Any]


class AmazonStandin(Standin):
    """Amazon's listing and feed APIs in memory; ``items`` is the seller's inventory, by SKU.

    Its orders are :attr:`order_desk`'s; ``orders``, ``create_order``, ``set_order_status`` and
    ``order_record`` are the desk's, named here too.
    """

    name = "amazon"

    def sandbox_credentials(self) -> dict[str, str]:
        """The OAuth client's credentials under Login with Amazon's names, and the seller id."""
        lwa = {"client_id": "lwa_client_id", "client_secret": "lwa_client_secret"}
        oauth = {lwa.get(name, name): value for name, value in super().sandbox_credentials().items()}
        return oauth | {"seller_id": self.seller_id}

    def sandbox_options(self, url: str) -> dict[str, str]:
        return {"lwa_url": url, "seller_id": self.seller_id, "feed_poll_seconds": "0.2"}

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
        self.seller_id = seller_id
        self.marketplace_ids = frozenset(marketplace_ids)
        self.accepted_then_invalid_rate = accepted_then_invalid_rate
        self.fatal_feed_rate = fatal_feed_rate
        self.feed_polls = max(1, feed_polls)
        self.outcomes = random.Random(seed)
        """Draws for late failures and fatal feeds, apart from the base's fault draws."""
        self.clock: Callable[[], float] = time.monotonic
        """When issued tokens expire; tests move it forward."""
        self.oauth = AccessTokens(
            client_id, client_secret, refresh_token, token_lifetime, lambda: self.clock()
        )
        self.tokens = self.oauth.issued
        """Access token -> when it expires, on :attr:`clock`."""
        self.items: dict[str, dict[str, Any]] = {}
        """SKU -> {productType, requirements, attributes, status, issues, createdDate, lastUpdatedDate}."""
        self.late_failures: set[str] = set()
        """SKUs accepted, then given an ERROR issue (the asynchronous failure the engine must catch)."""
        self.documents: dict[str, dict[str, Any]] = {}
        self.feeds: dict[str, dict[str, Any]] = {}
        self._serial = 0
        self.order_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """Stamps the orders' createdTime and lastUpdatedTime; tests move it to separate changes in time."""
        self.order_desk = desk = OrderDesk(
            self.items,
            seller_id=seller_id,
            marketplace_ids=self.marketplace_ids,
            authorize=self._authorize,
            serial=self._next,
            clock=lambda: self.order_clock(),
            seed=seed,
        )
        self.orders, self.create_order = desk.orders, desk.create_order
        self.set_order_status, self.order_record = desk.set_order_status, desk.order_record
        super().__init__(rate_limit, burst, faults)

    def build(self) -> Starlette:
        listings = "/listings/2021-08-01/items/{seller_id}/{sku:path}"
        return Starlette(
            exception_handlers={Refusal: answer_refusal},
            routes=[
                Route("/auth/o2/token", self.issue_token, methods=["POST"]),
                Route(listings, self.listings_item, methods=["GET", "PUT", "PATCH", "DELETE"]),
                Route("/listings/2021-08-01/items/{seller_id}", self.search_listings, methods=["GET"]),
                Route("/feeds/2021-06-30/documents", self.create_feed_document, methods=["POST"]),
                Route("/feeds/2021-06-30/documents/{document_id}", self.get_feed_document, methods=["GET"]),
                Route("/feeds/2021-06-30/feeds", self.create_feed, methods=["POST"]),
                Route("/feeds/2021-06-30/feeds/{feed_id}", self.get_feed, methods=["GET"]),
                Route("/_uploads/{document_id}", self.upload, methods=["PUT"]),
                Route("/_downloads/{document_id}", self.download, methods=["GET"]),
                *self.order_desk.routes(),
            ],
        )

    def error_body(self, status: int, message: str) -> Any:
        return error_body(status, message)

    # -- Login with Amazon -------------------------------------------------------------------

    async def issue_token(self, request: Request) -> Response:
        oauth = self.oauth
        refused = oauth.refusal(await form_body(request))
        if refused is not None:
            status, description = GRANT_REFUSALS[refused]
            return _json({"error": refused, "error_description": description}, status)
        token = oauth.issue(f"Atza|standin-{self._next():06d}")
        body = {"access_token": token, "token_type": "bearer", "expires_in": int(oauth.lifetime)}
        return _json({**body, "refresh_token": oauth.refresh_token})

    def _now(self) -> float:
        """:attr:`clock`'s time, which tests replace."""
        return self.clock()

    def _authorize(self, request: Request, seller_id: str | None = None) -> None:
        """403 without a live ``x-amz-access-token`` the stand-in issued, or for another seller."""
        token = request.headers.get("x-amz-access-token")
        expires = self.oauth.expiry(token)
        denied = "Access to requested resource is denied."
        if expires is None:
            why = "The access token you provided is revoked, malformed or invalid."
            raise refused(403, denied, why if token else "No access token.")
        if self.clock() >= expires:
            raise refused(403, denied, "The access token you provided has expired.")
        if seller_id is not None and seller_id != self.seller_id:
            raise refused(403, denied, f"Seller {seller_id} is not yours.")

    def add_issue(self, sku: str, code: str, message: str, severity: str = "ERROR") -> None:
        """What Amazon's catalog checks do to a listing after accepting it: an issue on ``sku``
        (an ERROR one suppresses it: neither buyable nor discoverable), shown from now on."""
        issue = {"code": code, "message": message, "severity": severity, "categories": []}
        self.items[sku]["issues"].append(issue)

    # -- Listings Items ------------------------------------------------------------------------

    async def listings_item(self, request: Request) -> Response:
        seller_id, sku = request.path_params["seller_id"], request.path_params["sku"]
        self._authorize(request, seller_id)
        marketplaces = [m for m in request.query_params.get("marketplaceIds", "").split(",") if m]
        if not marketplaces:
            return _error(400, "Missing required 'marketplaceIds' query parameter.")
        unknown = sorted(set(marketplaces) - self.marketplace_ids)
        if unknown:
            return _error(400, f"Invalid 'marketplaceIds': {', '.join(unknown)} is not available to you.")
        if request.method == "GET":
            return self._get_item(sku, request.query_params.get("includedData", "summaries"), marketplaces)
        if request.method == "DELETE":
            self.items.pop(sku, None)  # deleting what is gone is accepted: a retry must not fail
            self.late_failures.discard(sku)
            return self._submission(sku, [])
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _error(415, "The request body must be application/json.")
        try:
            body = loads(await request.body())
        except ValueError as exc:
            return _error(400, f"Malformed request body: {exc}")
        preview = request.query_params.get("mode") == "VALIDATION_PREVIEW"
        if request.method == "PUT":
            malformed = _put_request_errors(body)
            if malformed:
                return _error(400, malformed)
            issues = self._put(sku, body, marketplaces, preview)
        else:
            malformed = _patch_request_errors(body)
            if malformed:
                return _error(400, malformed)
            issues = self._patch(sku, body, marketplaces, preview)
        return self._submission(sku, issues, preview)

    async def search_listings(self, request: Request) -> Response:
        """``searchListingsItems``: the seller's SKUs, ``pageSize`` (at most 20, default 10) at a
        time, ``pagination.nextToken`` to the next page, and no further than the first 1,000, as the
        spec says; ``sortBy`` (sku, createdDate, lastUpdatedDate), ``sortOrder``, ``createdAfter``
        (inclusive) and ``createdBefore`` (exclusive) choose which."""
        seller_id = request.path_params["seller_id"]
        self._authorize(request, seller_id)
        query = request.query_params
        marketplaces = [m for m in query.get("marketplaceIds", "").split(",") if m]
        if not marketplaces or set(marketplaces) - self.marketplace_ids:
            return _error(400, "Missing or invalid 'marketplaceIds' query parameter.")
        wanted = [name for name in query.get("includedData", "summaries").split(",") if name]
        if set(wanted) - INCLUDED_DATA:
            return _error(400, f"Invalid 'includedData': {', '.join(sorted(set(wanted) - INCLUDED_DATA))}.")
        size = int_param(request, "pageSize", 10)
        if size is None or not 1 <= size <= SEARCH_PAGE_MAX:
            return _error(400, f"'pageSize' must be between 1 and {SEARCH_PAGE_MAX}.")
        sort_by = query.get("sortBy", "lastUpdatedDate")
        keys = {"sku": "sku", "createdDate": "createdDate", "lastUpdatedDate": "lastUpdatedDate"}
        if sort_by not in keys or query.get("sortOrder", "DESC") not in ("ASC", "DESC"):
            return _error(400, "Invalid 'sortBy' or 'sortOrder'.")
        after, before = query.get("createdAfter"), query.get("createdBefore")
        skus = [
            sku
            for sku, item in self.items.items()
            if (after is None or item["createdDate"] >= after)
            and (before is None or item["createdDate"] < before)
        ]
        identified = _identified(query.get("identifiers"), query.get("identifiersType"), skus)
        if isinstance(identified, Response):
            return identified
        skus = identified
        skus.sort(
            key=lambda sku: (sku if sort_by == "sku" else self.items[sku][sort_by], sku),
            reverse=query.get("sortOrder", "DESC") == "DESC",
        )
        reachable = skus[:SEARCH_REACH]
        token = query.get("pageToken")
        start = 0
        if token is not None:
            if not token.startswith("page-") or not token[5:].isdigit():
                return _error(400, "Invalid 'pageToken'.")
            start = int(token[5:])
        page = reachable[start : start + size]
        body: dict[str, Any] = {
            "numberOfResults": len(skus),
            "items": [self._view(sku, self.items[sku], wanted, marketplaces[0]) for sku in page],
        }
        pagination = {}
        if start + size < len(reachable):
            pagination["nextToken"] = f"page-{start + size}"
        if start > 0:
            pagination["previousToken"] = f"page-{max(0, start - size)}"
        if pagination:
            body["pagination"] = pagination
        return _json(body)

    def _get_item(self, sku: str, included: str, marketplaces: list[str]) -> Response:
        wanted = [name for name in included.split(",") if name]
        unknown = sorted(set(wanted) - INCLUDED_DATA)
        if unknown:
            return _error(400, f"Invalid 'includedData': {', '.join(unknown)}.")
        item = self.items.get(sku)
        if item is None:
            return _error(404, f"SKU '{sku}' not found in marketplace {marketplaces[0]}.")
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
            elif name == "offers":
                view[name] = [
                    {
                        "marketplaceId": offer.get("marketplace_id"),
                        "offerType": "B2C",
                        "price": {"currencyCode": offer.get("currency"), "amount": _our_price(offer)},
                        "audience": {"value": offer.get("audience", "ALL")},
                    }
                    for offer in attributes.get("purchasable_offer") or []
                    if _our_price(offer) is not None
                ]
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
        self._authorize(request)
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("contentType"), str):
            return _error(400, "Missing required 'contentType'.")
        document_id = f"amzn1.tortuga.4.na.{uuid.UUID(int=self._next())}"
        self.documents[document_id] = {"contentType": body["contentType"], "content": None}
        url = f"{str(request.base_url).rstrip('/')}/_uploads/{document_id}"
        return _json({"feedDocumentId": document_id, "url": url}, 201)

    async def upload(self, request: Request) -> Response:
        """The presigned upload URL: no access token, the document id is the permission."""
        document = look_up(
            self.documents, request.path_params["document_id"], _missing("No such upload URL.")
        )
        document["content"] = await request.body()
        return Response(status_code=200)

    async def download(self, request: Request) -> Response:
        document = self.documents.get(request.path_params["document_id"])
        if document is None or document["content"] is None:
            return _error(404, "No such document.")
        return Response(document["content"], media_type=document["contentType"])

    async def create_feed(self, request: Request) -> Response:
        self._authorize(request)
        body = await _body(request)
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        for name in ("feedType", "marketplaceIds", "inputFeedDocumentId"):
            if not body.get(name):
                return _error(400, f"Missing required '{name}'.")
        if body["feedType"] not in FEED_TYPES:
            return _error(400, f"Feed type {body['feedType']} is not supported by this stand-in.")
        unknown = sorted(set(body["marketplaceIds"]) - self.marketplace_ids)
        if unknown:
            return _error(400, f"Invalid 'marketplaceIds': {', '.join(unknown)}.")
        document = self.documents.get(str(body["inputFeedDocumentId"]))
        if document is None or document["content"] is None:
            return _error(400, f"Feed document {body['inputFeedDocumentId']} has no uploaded content.")
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
        self._authorize(request)
        feed = look_up(self.feeds, request.path_params["feed_id"], _missing("Feed not found."))
        if feed["processingStatus"] in ("IN_QUEUE", "IN_PROGRESS"):
            feed["polls"] += 1
            if feed["polls"] >= self.feed_polls:
                self._process(feed)
            else:
                feed["processingStatus"] = "IN_PROGRESS"
        return _json({k: v for k, v in feed.items() if k not in ("polls", "input")})

    async def get_feed_document(self, request: Request) -> Response:
        self._authorize(request)
        document_id = request.path_params["document_id"]
        if document_id not in self.documents:
            return _error(404, "Feed document not found.")
        url = f"{str(request.base_url).rstrip('/')}/_downloads/{document_id}"
        return _json({"feedDocumentId": document_id, "url": url})

    def _process(self, feed: dict[str, Any]) -> None:
        """Apply the feed's messages to the items, and write the processing report."""
        if feed["feedType"] == ACKNOWLEDGEMENT_FEED:  # orders, not items: the order desk reads it
            status, report = self.order_desk.acknowledge(feed["input"])
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

    # -- helpers -------------------------------------------------------------------------------

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


def _identified(identifiers: str | None, kind: str | None, skus: list[str]) -> list[str] | Response:
    """searchListingsItems' ``identifiers`` (at most 20) of ``identifiersType``: the stand-in knows
    SKUs only; without them, every SKU."""
    if identifiers is None and kind is None:
        return skus
    wanted = [i for i in (identifiers or "").split(",") if i]
    if not wanted or kind is None:
        return _error(400, "'identifiers' and 'identifiersType' must be given together.")
    if len(wanted) > IDENTIFIERS_MAX:
        return _error(400, f"'identifiers' takes at most {IDENTIFIERS_MAX} values.")
    if kind != "SKU":
        return _error(400, f"identifiersType {kind} is not supported by the stand-in (SKU is).")
    return [sku for sku in skus if sku in set(wanted)]


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


def _our_price(offer: Mapping[str, Any]) -> Any:
    for price in offer.get("our_price") or []:
        for entry in price.get("schedule") or []:
            if entry.get("value_with_tax") is not None:
                return entry["value_with_tax"]
    return None


def _issue(
    code: str, message: str, attribute: str | None = None, category: str = "INVALID_ATTRIBUTE"
) -> Issue:
    issue: Issue = {"code": code, "message": message, "severity": "ERROR", "categories": [category]}
    if attribute:
        issue["attributeNames"] = [attribute]
    return issue


def _has_error(issues: Iterable[Mapping[str, Any]]) -> bool:
    return any(issue.get("severity") == "ERROR" for issue in issues)


def _missing(message: str) -> Callable[[str], Exception]:
    return lambda key: refused(404, message)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


__all__ = ["AmazonStandin"]
