"""Netshoes (marketplace API v1): products with their SKUs, approval, then price, stock and activation.

``shared/specs/netshoes/API.md``; **the API may no longer be live** (SOURCE.md): everything here is
built as documented and unverified against Netshoes. A product is a family: every SKU of a VTEX
product (the rule file's ``variations: group_by``) goes in one ``POST /products``, never split;
a SKU added to a product Netshoes holds goes by ``POST /products/{productId}/skus``. Netshoes then
reviews each SKU (``GET /skus/{sku}/bus/{buId}/status``: ``skuSynchronized``) and until it has
approved one, discards its price and stock (a ``Business_Logic_Error``), so nothing but the
product is sent before: once approved, its stock (``PUT /skus/{sku}/stocks``), price
(``PUT /skus/{sku}/prices``) and activation per business unit (``PUT /skus/{sku}/bus/{buId}/status``)
go, in the documented order.

The approved state is the remote id: the Netshoes product id, recorded only once the SKU is
approved and its price, stock and activation landed. A SKU without one (a create, or a row lost)
is looked up first (its status), so nothing is created twice; one still in review fails as
retryable ("waiting for Netshoes to approve the SKU") and keeps no row, and the next run finds it
approved and sends its price and stock of then. After approval, product data is Netshoes' (its
panel, API.md §5): a content change sends the price and stock only. A delete deactivates the SKU
in every business unit (the API deletes nothing).

Every write is per SKU, so the executor hands every change to :meth:`apply_in_bulk`
(``bulk_threshold = 1``), which groups a family's creates and answers per SKU; the executor's
client paces every request at the seller's call plan (``calls_per_minute``: 50, 100, 250 or the
plan's name, ``initial`` by default; 429 beyond it is retried after its Retry-After).

``tradepost state rebuild`` reads every product's SKUs back (:meth:`NetshoesConnector.read_back`):
three reads a SKU (status, price, stock), so at 50 calls a minute about 16 SKUs a minute.

Options: ``calls_per_minute`` (initial = 50), ``business_units`` (``NS``; ``NS,ZT`` adds Zattini;
approval is read in the first), ``approval_wait_seconds`` (0: how long after a create its status
is read again in the same run), ``time_scale`` (1; the sandbox
runs Netshoes' minutes 600 times faster, and its stand-in too), ``max_attempts`` (8) and
``retry_seconds`` (0.5) for the connector's own requests. Credentials: ``client_id`` and
``access_token``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx

from engine import failpoints
from engine.connectors import (
    CallResult,
    ChangeRecord,
    Connector,
    Credentials,
    Listing,
    ListingKey,
    ListingStatus,
    OrderCallError,
    Reader,
    RemoteListing,
)
from marketplaces.netshoes._http import (
    API,
    Caller,
    auth_headers,
    calls_per_second,
    error_text,
    json_of,
    not_approved,
    retry_policy,
)
from marketplaces.netshoes._status import sku_statuses

WAITING = "waiting for Netshoes to approve the SKU"
SKU_FIELDS = ("color", "size", "gender", "flavor", "video")
"""Listing fields a rule file sets that go on each SKU as they are (values from the templates)."""
MEASURES = (("height", "height"), ("width", "width"), ("depth", "length"), ("weight", "weight"))
"""Netshoes' measure -> the listing field it is read from."""
CONCURRENCY = 8
READ_PAGE = 50
"""Products a ``GET /products`` page holds on ``state rebuild``."""
COUNTRY = "BR"
"""The stock's country: the only one the API documents."""
T = TypeVar("T")


@dataclass(frozen=True)
class Review:
    """A SKU's catalogue review as Netshoes answers it: unknown to it, in review, or approved."""

    found: bool
    approved: bool = False
    detail: str = ""


class NetshoesConnector(Connector):
    """Netshoes' requirements, bodies and per-SKU calls; see the module docstring."""

    name = "netshoes"
    listing_fields = (*SKU_FIELDS, *(field for _, field in MEASURES))
    title = "Netshoes"

    min_images = 1
    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {"*": ("brand",)}
    lists_families = True  # a product and its SKUs go in one request (API.md §4, "Conceito de Família")

    base_url = "https://api-prod.netshoes.com.br"  # the pattern of [gpupo]; unverified (README)
    credential_names = ("client_id", "access_token")
    rate_limit = 50 / 60  # the initial plan; the options' plan replaces it (see __init__)
    bulk_threshold = 1  # every change goes through apply_in_bulk: creates are grouped by family
    creates_are_keyed = True  # products by productId, SKUs by sku: a repeat is refused, never doubled

    option_defaults: ClassVar[Mapping[str, str]] = {
        "calls_per_minute": "initial",
        "business_units": "NS",
        "approval_wait_seconds": "0",
        "time_scale": "1",
    }

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        rate = calls_per_second(self.option("calls_per_minute"), float(self.option("time_scale")))
        vars(self)["rate_limit"] = rate  # the seller's plan, for the executor's pacing
        self.last_bulk_requests = self.last_bulk_retries = self.last_bulk_throttled = 0
        """Requests the last :meth:`apply_in_bulk` made, repeated, answered 429: the executor sums them."""

    @property
    def business_units(self) -> list[str]:
        return [bu.strip() for bu in self.option("business_units").split(",") if bu.strip()] or ["NS"]

    def attributes_sent(self, listing: Listing) -> Mapping[str, Any]:
        return {**listing.attributes, "brand": listing.fields.get("brand")}

    # -- bodies ------------------------------------------------------------------------------

    def sku_body(self, listing: Listing) -> dict[str, Any]:
        """One SKU of a product body: name, description, the template values, EAN, images, measures."""
        fields = listing.fields
        body: dict[str, Any] = {
            "sku": listing.sku_id,
            "name": listing.title,
            "description": _text(fields.get("description")),
            "eanIsbn": fields.get("gtin"),
            "images": [{"url": str(url)} for url in fields.get("images") or []],
        }
        body.update({name: fields.get(name) for name in SKU_FIELDS})
        body.update({name: _number(fields.get(field)) for name, field in MEASURES})
        return body

    def family_payload(self, listings: Sequence[Listing]) -> dict[str, Any] | None:
        """``POST /products``: the product (department and type from the category
        ``Department/ProductType``, brand, attributes) with every SKU of the family."""
        first = listings[0]
        department, _, product_type = first.category.partition("/")
        return {
            "productId": product_id(first),
            "department": department,
            "productType": product_type,
            "brand": first.fields.get("brand"),
            "attributes": [
                {"name": name, "value": _text(value)}
                for name, value in sorted(first.attributes.items())
                if value is not None
            ],
            "skus": [self.sku_body(listing) for listing in listings],
        }

    def payload(self, listing: Listing) -> dict[str, Any]:
        """A SKU alone: its product body with one SKU (sent whole when the product is new)."""
        return self.family_payload([listing]) or {}

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """``PUT /skus/{sku}/prices``: what the buyer pays (the sale price while there is one)."""
        offered = listing.sale_price if listing.sale_price is not None else listing.price
        return {"price": offered}

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        """``PUT /skus/{sku}/stocks``: the available quantity in the options' country."""
        return {"available": max(0, listing.quantity), "country": COUNTRY}

    def delete_payload(self, sku_id: str) -> dict[str, Any] | None:
        """``PUT /skus/{sku}/bus/{buId}/status`` in every business unit: not for sale."""
        return {"active": False}

    # -- sending -----------------------------------------------------------------------------

    async def auth_headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        return auth_headers(credentials.get("client_id"), credentials.get("access_token"))

    def caller(self, client: httpx.AsyncClient, headers: Mapping[str, str]) -> Caller:
        return Caller(client, headers, retry_policy(self.options))

    async def apply_in_bulk(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], changes: Sequence[ChangeRecord]
    ) -> dict[str, CallResult]:
        """Unapproved SKUs through review (created when Netshoes lacks them); the others' price,
        stock or deactivation; one outcome per SKU."""
        caller = self.caller(client, headers)
        records = [ChangeRecord.of(change) for change in changes]
        unapproved = {r.sku_id: r.listing for r in records if _in_review(r)}
        known = [r for r in records if r.sku_id not in unapproved]
        limit = asyncio.Semaphore(CONCURRENCY)
        try:
            sent = await asyncio.gather(*(_guard(self.send_known(caller, r), limit) for r in known))
            reviewed = await self.through_review(caller, {k: v for k, v in unapproved.items() if v}, limit)
        finally:
            self.last_bulk_requests, self.last_bulk_retries = caller.count, caller.retries
            self.last_bulk_throttled = caller.throttled
        return {**reviewed, **{r.sku_id: result for r, result in zip(known, sent, strict=True)}}

    async def send_known(self, caller: Caller, record: ChangeRecord) -> CallResult:
        """An approved SKU's price and/or stock (both for a content change), or a delete."""
        remote = str((record.before or {}).get("remote_id") or "") or None
        sku = quote(record.sku_id, safe="")
        if record.op == "delete":
            for bu in self.business_units:
                answer = await caller.call("PUT", f"/skus/{sku}/bus/{bu}/status", {"active": False})
                if answer.status_code != 404 and (failed := _refused(answer, "deactivation")):
                    return failed
            return CallResult(True)
        listing = record.listing
        assert listing is not None
        calls = []
        for kinds, body in self.bodies_sent(record):
            if "price" in kinds or "content" in kinds:
                calls.append(("prices", body if kinds == ("price",) else self.price_payload(listing)))
            if "stock" in kinds or "content" in kinds:
                calls.append(("stocks", body if kinds == ("stock",) else self.stock_payload(listing)))
        for what, body in calls:
            failed = _refused(await caller.call("PUT", f"/skus/{sku}/{what}", body), what)
            if failed:
                return failed
        return CallResult(True, remote_id=remote)

    async def through_review(
        self, caller: Caller, listings: Mapping[str, Listing], limit: asyncio.Semaphore
    ) -> dict[str, CallResult]:
        """Each SKU's review read; those Netshoes lacks created (a family in one request) and read
        again; the approved released (stock, price, activation); the others waiting."""
        reviews = await self.reviews(caller, listings, limit)
        absent = {
            sku: listings[sku]
            for sku, review in reviews.items()
            if isinstance(review, Review) and not review.found
        }
        if absent:
            reviews.update(await self.create(caller, absent, limit))
            failpoints.reach("netshoes:products-sent")
            await asyncio.sleep(float(self.option("approval_wait_seconds")))
            again = [sku for sku in absent if isinstance(reviews[sku], Review)]
            reviews.update(await self.reviews(caller, {sku: listings[sku] for sku in again}, limit))
        results = await asyncio.gather(
            *(self._released(caller, listings[sku], review, limit) for sku, review in reviews.items())
        )
        return dict(zip(reviews, results, strict=True))

    async def _released(
        self, caller: Caller, listing: Listing, review: Review | CallResult, limit: asyncio.Semaphore
    ) -> CallResult:
        if isinstance(review, CallResult):
            return review
        if not review.approved:
            detail = f" ({review.detail})" if review.detail else ""
            why = f"{WAITING}{detail}; its stock, price and activation are sent once it is"
            return CallResult(False, retryable=True, error=why)
        return await _guard(self.release(caller, listing), limit)

    async def reviews(
        self, caller: Caller, listings: Iterable[str], limit: asyncio.Semaphore
    ) -> dict[str, Review | CallResult]:
        """SKU -> its review in the first business unit (or why it could not be read)."""
        skus = list(listings)
        found = await asyncio.gather(*(_guard(self.review(caller, sku), limit) for sku in skus))
        return dict(zip(skus, found, strict=True))

    async def review(self, caller: Caller, sku_id: str) -> Review | CallResult:
        path = f"/skus/{quote(sku_id, safe='')}/bus/{self.business_units[0]}/status"
        answer = await caller.call("GET", path)
        if answer.status_code == 404:
            return Review(found=False)
        failed = _refused(answer, "status")
        if failed:
            return failed
        body = json_of(answer)
        return Review(True, body.get("skuSynchronized") is True, str(body.get("statusMatch") or ""))

    async def create(
        self, caller: Caller, listings: Mapping[str, Listing], limit: asyncio.Semaphore
    ) -> dict[str, Review | CallResult]:
        """The SKUs Netshoes lacks, by product: a new product with all of them in one request, or
        each added to the product Netshoes holds. SKU -> a failure, or a review still to read."""
        families: dict[str, list[Listing]] = {}
        for listing in listings.values():
            families.setdefault(product_id(listing), []).append(listing)
        done = await asyncio.gather(
            *(_guard(self.create_family(caller, members), limit) for members in families.values())
        )
        return {
            listing.sku_id: (result if not result.ok else Review(found=True))
            for members, result in zip(families.values(), done, strict=True)
            for listing in members
        }

    async def create_family(self, caller: Caller, members: Sequence[Listing]) -> CallResult:
        members = sorted(members, key=lambda listing: listing.sku_id)
        product = quote(product_id(members[0]), safe="")
        held = await caller.call("GET", f"/products/{product}")
        if held.status_code == 404:
            return _created(await caller.call("POST", "/products", self.family_payload(members)))
        if failed := _refused(held, "product look-up"):
            return failed
        for listing in members:
            failed = _created(await caller.call("POST", f"/products/{product}/skus", self.sku_body(listing)))
            if not failed.ok:
                return failed
        return CallResult(True)

    async def release(self, caller: Caller, listing: Listing) -> CallResult:
        """An approved SKU's stock, price and activation in every business unit, in that order."""
        sku = quote(listing.sku_id, safe="")
        calls = [("stocks", self.stock_payload(listing)), ("prices", self.price_payload(listing))]
        calls += [(f"bus/{bu}/status", {"active": True}) for bu in self.business_units]
        for what, body in calls:
            failed = _refused(await caller.call("PUT", f"/skus/{sku}/{what}", body), what)
            if failed:
                return failed
        return CallResult(True, remote_id=product_id(listing))

    # -- reading back (``tradepost state rebuild``) ---------------------------------------------

    reads_back = True

    async def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        """Every SKU of every product (``GET /products``, :data:`READ_PAGE` a page), with its review
        in the first business unit, its price and its stock (three reads a SKU). Only approved SKUs
        come back (with their product id: the approved state); one in review is left to the next
        apply, which reads its status and releases it. A deactivated SKU comes back withdrawn."""
        page, bu = 0, self.business_units[0]
        while True:
            answer = await reader.get(f"{API}/products", {"page": str(page), "size": str(READ_PAGE)})
            products = [p for p in answer.get("items") or [] if isinstance(p, Mapping)]
            for product in products:
                for body in product.get("skus") or []:
                    sku = quote(str(body.get("sku")), safe="")
                    status = await reader.get(f"{API}/skus/{sku}/bus/{bu}/status")
                    if status.get("skuSynchronized") is not True:
                        continue
                    price = await reader.get(f"{API}/skus/{sku}/prices")
                    stock = await reader.get(f"{API}/skus/{sku}/stocks")
                    yield RemoteListing(
                        str(body.get("sku")),
                        str(product.get("productId")),
                        _number(price.get("price")),
                        quantity=int(stock.get("available") or 0),
                        live=status.get("active") is True,
                    )
            if len(products) < READ_PAGE or not (answer.get("_links") or {}).get("next"):
                return
            page += 1

    reports_listing_status = True

    def listing_statuses(self, reader: Reader, keys: Sequence[ListingKey]) -> AsyncIterator[ListingStatus]:
        """Each SKU's review and activation in the first business unit, one read a SKU; see ``_status``."""
        return sku_statuses(reader, keys, self.business_units[0])

    def remote_differences(
        self, listing: Listing, remote: RemoteListing, family: Sequence[Listing]
    ) -> tuple[str, ...]:
        """Price (what the buyer pays) and stock only: after approval the product is Netshoes'."""
        kinds = []
        if remote.price != self.price_payload(listing)["price"]:
            kinds.append("price")
        if remote.quantity is not None and remote.quantity != max(0, listing.quantity):
            kinds.append("stock")
        return tuple(kinds)


def product_id(listing: Listing) -> str:
    """The Netshoes ``productId``: the family's key (the VTEX product), else the SKU's product."""
    return listing.group or listing.product_id


def _in_review(record: ChangeRecord) -> bool:
    """Not known to be approved: a create, or an update of a row without the product id."""
    remote = (record.before or {}).get("remote_id") if record.op != "create" else None
    return record.op != "delete" and not remote and record.listing is not None


def _refused(answer: httpx.Response, what: str) -> CallResult | None:
    """None for a 2xx; a discarded price or stock is retryable (the SKU is not approved)."""
    if 200 <= answer.status_code < 300:
        return None
    if not_approved(answer):
        return CallResult(False, retryable=True, error=f"{WAITING}: {what} discarded ({error_text(answer)})")
    return CallResult(False, error=f"{what}: {error_text(answer)}")


def _created(answer: httpx.Response) -> CallResult:
    """A create's answer: 2xx, or 409 (it was there: a repeat whose first answer was lost)."""
    if answer.status_code == 409:
        return CallResult(True)
    return _refused(answer, "product") or CallResult(True)


async def _guard(work: Awaitable[T], limit: asyncio.Semaphore) -> T | CallResult:
    """``work``'s outcome, at most :data:`CONCURRENCY` at a time; a call that never got an answer is
    a retryable failure of its SKU."""
    async with limit:
        try:
            return await work
        except (OrderCallError, httpx.TransportError) as exc:
            return CallResult(False, retryable=True, error=str(exc))


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


__all__ = ["NetshoesConnector", "Review", "product_id"]
