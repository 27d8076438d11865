"""Amazon Selling Partner API: Listings Items 2021-08-01 per SKU, ``JSON_LISTINGS_FEED`` in bulk.

A listing is created or replaced with ``putListingsItem`` (the full attribute set), and a
price or stock change is a ``patchListingsItem`` that replaces one attribute, so a price
update never re-submits content Amazon would have to re-review. The same bodies become feed
messages when a run is large enough to go through the Feeds API instead.

Amazon answers a submission with ACCEPTED and processes it later, so an accepted call is only
*pending*: :meth:`AmazonConnector.confirm` reads the listing back and fails it when Amazon has
since attached an ERROR issue. Feeds ask for the items' issues in their processing report, so
their outcomes are final when the report is read.

Exactly once, with no look-up before creating: every listing call is keyed by the seller SKU in
its path, ``/listings/2021-08-01/items/{sellerId}/{sku}``, and ``putListingsItem`` "creates a new
or fully-updates an existing listings item" (``shared/specs/amazon/listingsItems_2021-08-01.json``).
In a feed, the message's ``sku`` "uniquely identifies a listing for a Selling Partner" and
``UPDATE`` "indicates the full set of item attributes are provided and any existing attributes
data will be replaced" (``listings-feed-message-schema-v2.json``). So a create sent twice (after a
lost answer, a killed run, a deleted or restored state store) replaces the one listing and can
never add a second: the connector sends no ``POST`` that creates a listing (the Feeds API's
``POST``s create a document and a feed, whose messages are the idempotent ``UPDATE``/``PATCH``/
``DELETE`` above), so the executor has nothing to look up. ``tests/test_exactly_once.py`` proves it
on the stand-in: state lost, applied again, one listing per SKU at the planned price.

Options (the rule file's ``options:``): ``marketplace_id`` (default ATVPDKIKX0DER, amazon.com),
``language_tag`` (en_US), ``product_type`` (default for every SKU; otherwise the category the
rule file maps to is the product type), ``seller_id`` (feed header), ``issue_locale`` (feed
messages' language, default the language tag), ``localized_attributes`` (extra text attributes
that take a language tag).

Sending: ``lwa_url`` (Login with Amazon, default https://api.amazon.com; the sandbox points it at
the stand-in), ``seller_id`` (when not given as a credential), ``feed_poll_seconds`` (30),
``feed_timeout_seconds`` (4 h), ``max_attempts`` (5) and ``retry_seconds`` (1, doubling) for the
requests the connector makes itself (tokens, feeds, confirmations).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar

import httpx

from engine import TradepostError, failpoints
from engine.connectors import (
    Call,
    CallResult,
    ChangeRecord,
    Connector,
    Credentials,
    Listing,
    ListingKey,
    ListingStatus,
    Reader,
    RefreshedToken,
    RemoteListing,
    Route,
    RouteKind,
    parts_differing,
)
from marketplaces.amazon._feeds import FeedError, feed_outcomes, run_listings_feed
from marketplaces.amazon._http import (
    Pacing,
    Sender,
    item_path,
    listing_outcome,
    searched_outcomes,
    seller_path,
    submission_result,
    token_expired,
)
from marketplaces.amazon._payloads import (
    LOCALIZED_ATTRIBUTES,
    OPEN_SALE_WINDOW,
    Attribute,
    Scope,
    condition_type,
    fulfillment_availability,
    image_locators,
    product_identifier,
    purchasable_offer,
    replace_patch,
)
from marketplaces.amazon._readback import read_listings
from marketplaces.amazon._status import IDENTIFIERS_MAX, by_identifiers, listing_statuses

ChangeKind = RouteKind

FEED_VERSION = "2.0"
FEED_MAX_MESSAGES = 25_000
"""``messages.maxItems`` in listings-feed-schema-v2.json."""
CONFIRM_READS = 16
"""Listings read back at once to confirm a submission (each still waits for the rate limit's token)."""
QUERY = {"marketplaceIds": "{marketplace_id}", "issueLocale": "{issue_locale}"}
"""Every Listings call names the marketplace and the language of the issues Amazon answers with."""
REMOTE_PARTS = {"price": ("purchasable_offer",), "stock": ("fulfillment_availability",)}
"""The attributes that carry the price and the stock; every other one is content."""
FEED_OPERATIONS: dict[RouteKind, str] = {
    "create": "UPDATE",
    "content": "UPDATE",
    "price": "PATCH",
    "stock": "PATCH",
    "delete": "DELETE",
}


class AmazonConnector(Connector):
    """Amazon's requirements and request bodies."""

    name = "amazon"
    listing_fields = ("asin", "bullet_points", "list_price", "product_type", "sale_start_at", "sale_end_at")
    title = "Amazon"

    title_max_length = 200  # Amazon's title policy; item_name's schema allows longer
    min_images = 1  # main_product_image_locator
    max_images = 9  # the main image plus other_product_image_locator_1..8
    requires_gtin_or_brand_mpn = True  # GTIN, or brand + part_number with a GTIN exemption

    base_url = "https://sellingpartnerapi-na.amazon.com"
    credential_names = ("lwa_client_id", "lwa_client_secret", "refresh_token", "seller_id")
    lwa_url: ClassVar[str] = "https://api.amazon.com"

    rate_limit = 5.0  # Listings Items usage plan: 5 rps (PUT burst 10, PATCH/DELETE burst 5)
    batch_size = 10_000  # messages per JSON_LISTINGS_FEED document; the schema allows 25,000,
    # smaller documents are processed sooner and cost less to resubmit
    bulk_threshold = 500  # at 5 rps, 500 calls take 100 s; one feed does them in one upload

    localized_attributes: ClassVar[frozenset[str]] = LOCALIZED_ATTRIBUTES

    # Amazon keys listings by SKU, so no call needs the remote id. A PUT replaces the whole
    # listing; a PATCH replaces attributes, price and stock together in one (half the calls).
    routes: ClassVar[Mapping[RouteKind, Route]] = {
        "create": Route("PUT", "{item}", QUERY),
        "content": Route("PUT", "{item}", QUERY),
        "price": Route("PATCH", "{item}", QUERY),
        "stock": Route("PATCH", "{item}", QUERY),
        "delete": Route("DELETE", "{item}", QUERY),
    }
    merge_price_and_stock = "plan"

    token: RefreshedToken  # Login with Amazon, made in __init__

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.clock: Callable[[], float] = time.monotonic
        """When the cached access token is due for refresh; tests move it forward."""
        lwa_url = str(self.options.get("lwa_url") or self.lwa_url).rstrip("/")
        self.token = RefreshedToken(
            f"{lwa_url}/auth/o2/token",
            "Login with Amazon",
            retry=self.pacing.retry,
            client_credentials=("lwa_client_id", "lwa_client_secret"),
            clock=lambda: self.clock(),
        )
        self._credential_seller_id: str | None = None
        self.last_bulk_requests = 0
        """Requests the last :meth:`apply_in_bulk` made, for the executor's summary."""

    @property
    def scope(self) -> Scope:
        """Marketplace, language and localized attribute names, as this rule file's options set them."""
        extra = frozenset(self.options.get("localized_attributes") or ())
        return Scope(
            marketplace_id=str(self.options.get("marketplace_id", "ATVPDKIKX0DER")),
            language_tag=str(self.options.get("language_tag", "en_US")),
            localized=self.localized_attributes | extra,
        )

    @property
    def seller_id(self) -> str:
        """The seller (merchant token) in every path: the credential, else ``options.seller_id``."""
        seller = self._credential_seller_id or self.options.get("seller_id")
        if not seller:
            raise TradepostError(
                "Amazon needs the seller id (merchant token): "
                "set the seller_id credential or options.seller_id"
            )
        return str(seller)

    @property
    def pacing(self) -> Pacing:
        return Pacing.from_options(self.options)

    @property
    def query(self) -> dict[str, str]:
        """``marketplaceIds`` (required on every Listings call) and the language of Amazon's issues."""
        locale = str(self.options.get("issue_locale") or self.scope.language_tag)
        return {"marketplaceIds": self.scope.marketplace_id, "issueLocale": locale}

    def product_type(self, listing: Listing) -> str:
        """The listing's own ``product_type`` field, else the option, else the mapped category."""
        return str(listing.fields.get("product_type") or self.options.get("product_type") or listing.category)

    # -- attributes --------------------------------------------------------------------------

    def attributes(self, listing: Listing) -> dict[str, Attribute]:
        """Every attribute of the listing; rule-file attributes come last and win on a clash."""
        scope, fields = self.scope, listing.fields
        built: dict[str, Attribute] = {"item_name": scope.attribute("item_name", listing.title)}
        for field, attribute in (
            ("brand", "brand"),
            ("description", "product_description"),
            ("mpn", "part_number"),
            ("asin", "merchant_suggested_asin"),
        ):
            if fields.get(field):
                built[attribute] = scope.attribute(attribute, fields[field])
        if fields.get("bullet_points"):
            built["bullet_point"] = scope.attribute("bullet_point", list(fields["bullet_points"]))
        if fields.get("gtin"):
            built["externally_assigned_product_identifier"] = product_identifier(str(fields["gtin"]), scope)
        elif not fields.get("asin"):
            # Without a GTIN or an ASIN to match, Amazon needs the brand's GTIN exemption declared.
            built["supplier_declared_has_product_identifier_exemption"] = scope.attribute(
                "supplier_declared_has_product_identifier_exemption", True
            )
        built["condition_type"] = scope.attribute("condition_type", condition_type(fields.get("condition")))
        built.update(image_locators(list(fields.get("images") or []), scope))
        if fields.get("list_price") is not None:
            built["list_price"] = [
                {
                    "currency": listing.currency,
                    "value": fields["list_price"],
                    "marketplace_id": scope.marketplace_id,
                }
            ]
        built["purchasable_offer"] = self._offer(listing)
        built["fulfillment_availability"] = fulfillment_availability(listing.quantity)
        for name, value in listing.attributes.items():
            if value is not None:
                built[name.lower()] = scope.attribute(name.lower(), value)
        return built

    def _offer(self, listing: Listing) -> Attribute:
        window = (
            str(listing.fields.get("sale_start_at") or OPEN_SALE_WINDOW[0]),
            str(listing.fields.get("sale_end_at") or OPEN_SALE_WINDOW[1]),
        )
        return purchasable_offer(listing.price, listing.sale_price, listing.currency, self.scope, window)

    # -- hooks -------------------------------------------------------------------------------

    def payload(self, listing: Listing) -> dict[str, Any]:
        """``ListingsItemPutRequest``: product facts and sales terms together (requirements LISTING)."""
        return {
            "productType": self.product_type(listing),
            "requirements": "LISTING",
            "attributes": self.attributes(listing),
        }

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """``ListingsItemPatchRequest`` replacing ``purchasable_offer``: an ended sale disappears with it."""
        return self._patch(listing, "purchasable_offer", self._offer(listing))

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        """``ListingsItemPatchRequest`` replacing ``fulfillment_availability`` only."""
        return self._patch(listing, "fulfillment_availability", fulfillment_availability(listing.quantity))

    def delete_payload(self, sku_id: str) -> dict[str, Any] | None:
        """``deleteListingsItem`` takes no body: the SKU in the path is the whole request."""
        return None

    def _patch(self, listing: Listing, name: str, value: Attribute) -> dict[str, Any]:
        return {"productType": self.product_type(listing), "patches": [replace_patch(name, value)]}

    # -- feeds -------------------------------------------------------------------------------

    def feed_message(self, listing: Listing, message_id: int, operation: ChangeKind) -> dict[str, Any]:
        """One message of a ``JSON_LISTINGS_FEED``, built from the same bodies as the single calls.

        create/content -> UPDATE (full replace), price/stock -> PATCH, delete -> DELETE.
        """
        body: dict[str, Any] | None = None
        if operation in ("price", "stock"):
            body = self.price_payload(listing) if operation == "price" else self.stock_payload(listing)
        elif operation != "delete":
            body = self.payload(listing)
        return self._message(listing.sku_id, message_id, FEED_OPERATIONS[operation], body)

    def saved_feed_message(self, change: ChangeRecord, message_id: int) -> dict[str, Any] | None:
        """The message for a saved change, from the body its single call would send: a feed sends
        what the plan showed. A change that sends nothing (unchanged, invalid) has no message."""
        sent = self.bodies_sent(change) if change.op in ("create", "update", "delete") else []
        if not sent:
            return None
        kinds, body = sent[0]
        return self._message(change.sku_id, message_id, FEED_OPERATIONS[kinds[0]], body)

    def _message(
        self, sku: str, message_id: int, operation_type: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        if not 1 <= message_id <= 2_147_483_647:
            raise ValueError(f"messageId {message_id} is outside 1..2147483647")
        return {"messageId": message_id, "sku": sku, "operationType": operation_type, **(body or {})}

    def feed_document(
        self,
        messages: Sequence[dict[str, Any]],
        seller_id: str | None = None,
        report: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The feed document: a header naming the seller, then between 1 and 25,000 messages.

        ``report`` names the item data (``issues``, ...) the processing report should carry.
        """
        seller = seller_id or self.options.get("seller_id")
        if not seller:
            raise ValueError("an Amazon feed needs a seller id: set options.seller_id in the rule file")
        if not 1 <= len(messages) <= FEED_MAX_MESSAGES:
            raise ValueError(f"a feed carries 1 to {FEED_MAX_MESSAGES} messages, not {len(messages)}")
        locale = str(self.options.get("issue_locale") or self.scope.language_tag)
        header: dict[str, Any] = {"sellerId": str(seller), "version": FEED_VERSION, "issueLocale": locale}
        if report:
            header["report"] = {"includedData": list(report), "apiVersion": "2021-08-01"}
        return {"header": header, "messages": list(messages)}

    # -- sending -----------------------------------------------------------------------------

    def path_values(self, change: ChangeRecord, remote_id: str | None) -> dict[str, str]:
        """The listing's path and the ``marketplaceIds`` and ``issueLocale`` every call carries."""
        query = self.query
        return {
            "item": item_path(self.seller_id, change.sku_id),
            "marketplace_id": query["marketplaceIds"],
            "issue_locale": query["issueLocale"],
        }

    def read_result(self, call: Call, response: httpx.Response) -> CallResult:
        """ACCEPTED is pending until confirmed; INVALID or an ERROR issue fails for good."""
        # A DELETE has nothing left to validate: accepted is done.
        return submission_result(response, expects_processing=call.kind != "delete")

    def token_refused(self, response: httpx.Response) -> bool:
        """Amazon says an access token expired in flight with a 403."""
        return token_expired(response)

    async def auth_headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        """``x-amz-access-token`` from Login with Amazon, cached until a minute before it expires."""
        self._credential_seller_id = credentials.values.get("seller_id") or None
        return {"x-amz-access-token": await self.token.token(client, credentials)}

    async def confirm(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], pending: Mapping[str, str]
    ) -> dict[str, CallResult]:
        """Reads the accepted SKUs back, :data:`CONFIRM_READS` requests at a time: an ERROR issue Amazon
        attached since fails a SKU, and so does its absence. ``searchListingsItems`` reads 20 SKUs
        a request (``identifiers``); a SKU with a comma in it, which that list cannot name, is read
        alone (``getListingsItem``). A request per SKU made confirming a batch cost as many
        requests as sending it."""
        sender, gate = Sender(client, self.pacing), asyncio.Semaphore(CONFIRM_READS)
        search = seller_path(self.seller_id)

        async def send(path: str, params: Mapping[str, str]) -> httpx.Response | CallResult:
            async with gate:
                try:
                    response = await sender.send("GET", path, headers=headers, params=params)
                    failpoints.reach("amazon:confirm-read")
                except httpx.TransportError as exc:
                    return CallResult(False, retryable=True, error=f"cannot reach Amazon: {exc}")
            self.drop_refused_token(response)
            return response

        async def alone(sku: str, submission: str) -> dict[str, CallResult]:
            params = {**self.query, "includedData": "issues,summaries"}
            answer = await send(item_path(self.seller_id, sku), params)
            return {sku: answer if isinstance(answer, CallResult) else listing_outcome(answer, submission)}

        async def searched(chunk: dict[str, str]) -> dict[str, CallResult]:
            answer = await send(search, {**self.query, **by_identifiers(list(chunk), "issues")})
            if isinstance(answer, CallResult):
                return dict.fromkeys(chunk, answer)
            return searched_outcomes(answer, chunk)

        listed = [sku for sku in pending if "," not in sku]
        reads = [
            *(
                searched({s: pending[s] for s in listed[i : i + IDENTIFIERS_MAX]})
                for i in range(0, len(listed), IDENTIFIERS_MAX)
            ),
            *(alone(sku, submission) for sku, submission in pending.items() if "," in sku),
        ]
        outcomes = {sku: result for read in await asyncio.gather(*reads) for sku, result in read.items()}
        return {sku: outcomes[sku] for sku in pending}

    # -- reading back (``tradepost state rebuild``) ---------------------------------------------

    reads_back = True

    async def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        """``searchListingsItems``, 20 SKUs a page; see ``_readback``."""
        await reader.headers()  # the seller id comes with the credentials
        path = seller_path(self.seller_id)
        async for listing in read_listings(reader, path, {"marketplaceIds": self.scope.marketplace_id}):
            yield listing

    reports_listing_status = True

    async def listing_statuses(
        self, reader: Reader, keys: Sequence[ListingKey]
    ) -> AsyncIterator[ListingStatus]:
        """``searchListingsItems`` by 20 SKUs, with summaries and issues; see ``_status``."""
        await reader.headers()  # the seller id comes with the credentials
        path = seller_path(self.seller_id)
        async for status in listing_statuses(reader, path, self.query, keys):
            yield status

    def remote_differences(
        self, listing: Listing, remote: RemoteListing, family: Sequence[Listing]
    ) -> tuple[str, ...]:
        """The attributes a PUT would send, compared with those read: the offer decides price,
        ``fulfillment_availability`` stock, the others (and the product type) content."""
        sent = {"productType": self.product_type(listing), "attributes": self.attributes(listing)}
        return parts_differing(sent, remote.content, "attributes", REMOTE_PARTS)

    async def apply_in_bulk(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], changes: Sequence[ChangeRecord]
    ) -> dict[str, CallResult]:
        """One ``JSON_LISTINGS_FEED`` per ``batch_size`` messages; outcomes from the processing report."""
        messages: list[dict[str, Any]] = []
        for change in changes:
            message = self.saved_feed_message(ChangeRecord.of(change), len(messages) + 1)
            if message is not None:
                messages.append(message)
        sender, outcomes = Sender(client, self.pacing), dict[str, CallResult]()
        for start in range(0, len(messages), self.batch_size):
            chunk = messages[start : start + self.batch_size]
            skus = {int(m["messageId"]): str(m["sku"]) for m in chunk}
            document = self.feed_document(chunk, self.seller_id, report=["issues"])
            try:
                feed, report = await run_listings_feed(sender, headers, document, [self.scope.marketplace_id])
            except (FeedError, httpx.TransportError) as exc:
                # The feed never started or its fate is unknown; every message is idempotent
                # (UPDATE, PATCH replace, DELETE), so sending them again is safe.
                failed = CallResult(False, retryable=getattr(exc, "retryable", True), error=str(exc))
                outcomes.update(dict.fromkeys(skus.values(), failed))
                continue
            outcomes.update(feed_outcomes(feed, report, skus, self.pacing))
        self.last_bulk_requests = sender.count
        return outcomes


__all__ = ["AmazonConnector", "ChangeKind"]
