"""One apply's calls to the Magalu portfolio, SKU by SKU, and what each SKU's answers mean.

The guarantees (``__init__`` says why):

- a create is ``POST /skus``; a 409 means Magalu holds the SKU already (an earlier run, a lost state
  store), so its content is brought to the plan by ``PATCH /skus/{sku}`` instead: never two SKUs;
- price and stock go only to a SKU whose review Magalu has finished (``status`` read with
  ``GET /skus/{sku}``, up to ``polls`` times ``poll_seconds`` apart): in review, the SKU fails as
  retryable and keeps no state row, so its price and stock are sent when they start to count;
  refused by the review, it fails with the reason Magalu gives;
- a family's main variation is created first and the others only once it exists;
- price and stock are created with POST (409 ``PRICE_ALREADY_EXISTS``: sent again with PATCH) and
  updated with PATCH (404: none yet, sent with POST), so every call may be repeated;
- every SKU gets one outcome with its reason; an answer that is not JSON is read as a pending one.

Status names (``PUBLISHED``, in review, ``REJECTED``) and the refusal's ``reason`` field are
*unverified*: only ``PUBLISHED`` appears in the documentation read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from engine import failpoints
from engine.connectors import CallResult, ChangeRecord, Reader, RemoteListing, json_body
from marketplaces.magalu._http import MagaluSender, failure, from_cents, results

if TYPE_CHECKING:
    from marketplaces.magalu import MagaluConnector

SKUS = "/seller/v1/portfolios/skus"
PRICES = "/seller/v1/portfolios/prices"
STOCKS = "/seller/v1/portfolios/stocks"
PUBLISHED = frozenset({"PUBLISHED"})
REFUSED = frozenset({"REJECTED", "REFUSED"})
WAITING = "waiting for Magalu's review"
PAGE = 100
"""SKUs a list page holds (``max_limit`` for SKUs)."""


def sku_path(base: str, sku: str) -> str:
    return f"{base}/{quote(sku, safe='')}"


def content_of(sku_body: Mapping[str, Any]) -> dict[str, Any]:
    """A ``PATCH /skus/{sku}`` body: the SKU's content, without its key and its (fixed) group."""
    return {key: value for key, value in sku_body.items() if key not in ("sku", "group")}


@dataclass
class _Unit:
    """SKUs sent together: one SKU, or a family (its main variation first); each with its body and change."""

    members: list[tuple[str, Mapping[str, Any]]]
    changes: dict[str, ChangeRecord]


@dataclass
class Portfolio:
    """The calls of one apply, through one sender; see the module docstring."""

    connector: MagaluConnector
    sender: MagaluSender
    polls: int = 3
    poll_seconds: float = 2.0
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    token_refused: bool = False
    outcomes: dict[str, CallResult] = field(default_factory=dict)

    async def apply(self, changes: Sequence[ChangeRecord], concurrency: int) -> dict[str, CallResult]:
        limit = asyncio.Semaphore(max(1, concurrency))

        async def run(work: Awaitable[None]) -> None:
            async with limit:
                await work

        await asyncio.gather(*(run(work) for work in self._work(changes)))
        return self.outcomes

    def _work(self, changes: Sequence[ChangeRecord]) -> list[Awaitable[None]]:
        """A create unit per SKU or family (a follower goes with its leader's body), an update each."""
        present = {change.sku_id for change in changes}
        by_sku = {change.sku_id: change for change in changes}
        work: list[Awaitable[None]] = []
        for change in changes:
            listing = change.listing
            remote = (change.before or {}).get("remote_id") if change.op != "create" else None
            if change.op == "delete" or (change.op == "update" and remote):
                work.append(self._update(change))
                continue
            if change.leader is not None and change.leader != change.sku_id and change.leader in present:
                continue  # created with its family, by its leader's unit
            body = change.payloads[0] if change.payloads and change.op == "create" else None
            if body is None and listing is not None:
                body = self.connector.payload(listing)
            if body is None:
                continue
            members = [(str(m["sku"]["sku"]), m) for m in body.get("family") or [body]]
            mine = {sku: by_sku[sku] for sku, _ in members if sku in by_sku}
            work.append(self._create(_Unit(members, mine or {change.sku_id: change})))
        return work

    # -- creates ---------------------------------------------------------------------------

    async def _create(self, unit: _Unit) -> None:
        (main, main_body), *others = unit.members
        failed = await self._guarded(self._post_sku(main, main_body))
        if failed is not None:
            why = f"its family's main variation {main} was not created: {failed.error}" if others else ""
            for sku, _ in unit.members:
                self._done(unit, sku, failed if sku == main or not why else _fail(why, failed.retryable))
            return
        posted = await asyncio.gather(*(self._guarded(self._post_sku(sku, body)) for sku, body in others))
        for (sku, _), result in zip(others, posted, strict=True):
            if result is not None:
                self._done(unit, sku, result)
        finishing = [(sku, body) for sku, body in unit.members if sku not in self.outcomes]
        finished = await asyncio.gather(
            *(
                self._guarded(self._priced(sku, body, ("price", "stock"), create=True))
                for sku, body in finishing
            )
        )
        for (sku, _), result in zip(finishing, finished, strict=True):
            self._done(unit, sku, result)

    async def _post_sku(self, sku: str, body: Mapping[str, Any]) -> CallResult | None:
        """Create the SKU; one Magalu holds already gets the planned content instead."""
        answer = await self.sender.send("POST", SKUS, json=body["sku"])
        failpoints.reach("magalu:sku-sent")
        if answer.status_code == 409:
            answer = await self.sender.send("PATCH", sku_path(SKUS, sku), json=content_of(body["sku"]))
        return self._failed(answer, f"SKU {sku}")

    # -- updates ---------------------------------------------------------------------------

    async def _update(self, change: ChangeRecord) -> None:
        self.outcomes[change.sku_id] = await self._guarded(self._updated(change)) or _ok(change.sku_id)

    async def _updated(self, change: ChangeRecord) -> CallResult | None:
        sku = change.sku_id
        for kinds, body in self.connector.bodies_sent(change):
            if body is None:
                continue
            if kinds[0] == "content":
                answer = await self.sender.send("PATCH", sku_path(SKUS, sku), json=content_of(body["sku"]))
                failed = self._failed(answer, f"SKU {sku}")
                fields = tuple(kind for kind in ("price", "stock") if kind in change.fields)
                return failed or await self._priced(sku, body, fields, create=False)
            failed = await self._write(
                STOCKS if kinds[0] in ("stock", "delete") else PRICES, sku, body, False
            )
            if failed is not None:
                return failed
        return None

    # -- review, price and stock -----------------------------------------------------------

    async def _priced(
        self, sku: str, body: Mapping[str, Any], kinds: Sequence[str], *, create: bool
    ) -> CallResult | None:
        """Once the review is over: the price and the stock ``kinds`` names."""
        waiting = await self._review(sku)
        if waiting is not None:
            return waiting
        for kind in kinds:
            failed = await self._write(PRICES if kind == "price" else STOCKS, sku, body[kind], create)
            if failed is not None:
                return failed
        return None

    async def _review(self, sku: str) -> CallResult | None:
        """None once Magalu has published the SKU; else why its price and stock cannot go yet."""
        status = ""
        for attempt in range(self.polls):
            if attempt:
                await self.sleep(self.poll_seconds)
            answer = await self.sender.send("GET", sku_path(SKUS, sku))
            failpoints.reach("magalu:review-read")
            if answer.status_code != 404:  # just created: not yet readable
                failed = self._failed(answer, f"SKU {sku}")
                if failed is not None:
                    return failed
            found = json_body(answer)
            found = found if isinstance(found, dict) else {}
            status = str(found.get("status") or "").upper()
            if status in PUBLISHED:
                return None
            if status in REFUSED:
                why = refusal_reason(found)
                return _fail(f"Magalu's review refused SKU {sku} ({status}): {why}", False)
        where = f"status {status}" if status else "not yet readable"
        return _fail(f"{WAITING} ({where}); its price and stock are sent once it is published", True)

    async def _write(self, base: str, sku: str, body: Any, create: bool) -> CallResult | None:
        """POST (a create) or PATCH; the other verb when the first says the resource is (not) there."""
        path = sku_path(base, sku)
        method, other, switch = ("POST", "PATCH", 409) if create else ("PATCH", "POST", 404)
        answer = await self.sender.send(method, path, json=body)
        failpoints.reach("magalu:offer-sent")
        if answer.status_code == switch:
            answer = await self.sender.send(other, path, json=body)
        return self._failed(answer, f"{'price' if base == PRICES else 'stock'} of {sku}")

    # -- outcomes --------------------------------------------------------------------------

    async def _guarded(self, work: Awaitable[CallResult | None]) -> CallResult | None:
        """The work's failure, a lost connection (after the sender's retries) as a retryable one."""
        try:
            return await work
        except httpx.TransportError as exc:
            return _fail(f"Magalu did not answer: {type(exc).__name__}: {exc}", True)

    def _failed(self, answer: httpx.Response, what: str) -> CallResult | None:
        if 200 <= answer.status_code < 300:
            return None
        self.token_refused |= answer.status_code == 401
        return failure(answer, what)

    def _done(self, unit: _Unit, sku: str, result: CallResult | None) -> None:
        if sku in unit.changes:
            self.outcomes[sku] = result or _ok(sku)


def _ok(sku: str) -> CallResult:
    return CallResult(True, remote_id=sku)


def _fail(error: str, retryable: bool) -> CallResult:
    return CallResult(False, retryable=retryable, error=error)


# -- reading back ----------------------------------------------------------------------------------


def refusal_reason(found: Mapping[str, Any]) -> str:
    """Why Magalu's review refused a SKU, as its answer gives it."""
    return str(found.get("reason") or found.get("status_reason") or "no reason given")


async def portfolio(reader: Reader) -> AsyncIterator[Mapping[str, Any]]:
    """The seller's SKUs as Magalu shows them, page by page (:data:`PAGE` a request)."""
    offset = 0
    while True:
        page = await reader.get(SKUS, {"_limit": str(PAGE), "_offset": str(offset)})
        skus = results(page)
        for found in skus:
            if found.get("sku"):
                yield found
        offset += len(skus)
        if len(skus) < PAGE:
            return


async def read_back(reader: Reader, channel_id: str) -> AsyncIterator[RemoteListing]:
    """The portfolio page by page; each published SKU with the channel's price and stock."""
    async for found in portfolio(reader):
        if str(found.get("status") or "").upper() in PUBLISHED:
            yield await _remote(reader, found, channel_id)


async def _remote(reader: Reader, found: Mapping[str, Any], channel_id: str) -> RemoteListing:
    sku = str(found["sku"])
    prices = [p for p in results(await reader.get(sku_path(PRICES, sku))) if _on(p, channel_id)]
    stocks = [s for s in results(await reader.get(sku_path(STOCKS, sku))) if _on(s, channel_id)]
    price = prices[0] if prices else {}
    listed = from_cents(price.get("list_price"), price.get("normalizer")) if price else None
    paid = from_cents(price.get("price"), price.get("normalizer")) if price else None
    quantity = sum(int(s.get("quantity") or 0) for s in stocks if s.get("type") == "AVAILABLE")
    group = found.get("group") if isinstance(found.get("group"), Mapping) else {}
    return RemoteListing(
        sku,
        sku,
        listed,
        paid if paid != listed else None,
        quantity if stocks else None,
        {key: found.get(key) for key in ("title", "description", "brand")},
        group=str(group.get("id")) if group and group.get("id") else None,
    )


def _on(entry: Mapping[str, Any], channel_id: str) -> bool:
    channel = entry.get("channel")
    return not isinstance(channel, Mapping) or str(channel.get("id")) == channel_id
