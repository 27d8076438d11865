"""The VTEX source: a store's SKUs in one trade policy, read from VTEX's APIs as canonical records.

What it calls, per page of SKU ids and per SKU (paths and fields from VTEX's OpenAPI specs):

- ``GET /api/catalog_system/pvt/sku/stockkeepingunitidsbysaleschannel?sc=&page=&pageSize=&onlyAssigned=true``
  (Catalog API, "List all SKUs in a sales channel"): the SKU ids of the trade policy, a page
  at a time; the documented trade-policy listing, so no SKU outside it is ever fetched;
- ``POST /api/checkout/pub/orderForms/simulation?sc=`` (Checkout API), once per page: the
  prices after promotions of the whole page in one call;
- ``GET /api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}?sc=`` (Catalog API, "Get SKU
  and context"): product, SKU, categories, brand, specifications, images, dimensions;
- ``GET /pricing/prices/{itemId}`` and ``GET /pricing/prices/{itemId}/computed`` (Pricing API,
  at ``https://api.vtex.com/{account}``, "Get computed prices for all price tables"): base, cost,
  list and selling prices, the computed ones of every trade policy in one answer, each trade
  policy taking its own entry;
- ``GET /pricing/prices/{itemId}/computed/{tradePolicyId}`` only for a trade policy that answer
  has no entry for (one without a fixed price): its answer, a 404 included, decides;
- ``GET /api/logistics/pvt/inventory/skus/{skuId}`` (Logistics API): stock per warehouse.

The field-by-field mapping is ``_mapping.py`` (the table of ``docs/catalog.md`` as code).

A source never builds its HTTP client: the caller (``vtex_records``, the sandbox, a test) mounts
the transport, base URL and credentials, so the same code runs against VTEX, the stand-in in
process, or the stand-in on a loopback socket.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx

from engine.catalog import CatalogRecord, FirstSeen, MalformedRecord, SourceItem
from engine.connectors import AiohttpTransport, Catalogs, Changed, Client, RetryPolicy, Source
from engine.project import ConfigError, SourceConfig, VtexAccount
from engine.secrets import check_header_value, read_secret
from marketplaces.vtex._mapping import VtexShapeError, computed_in, promotional_prices, vtex_record
from marketplaces.vtex._order_placement import VtexOrders
from marketplaces.vtex._reader import (
    DEFAULT_CONCURRENCY,
    CallFailed,
    Reads,
    SharedAnswers,
    VtexAccessError,
    VtexReader,
    reads_for,
)

__all__ = [
    "VtexAccessError",
    "VtexCatalogSource",
    "VtexCatalogs",
    "VtexReader",
    "VtexSource",
    "vtex_account",
    "vtex_records",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000  # the largest page VTEX documents for its SKU id listings
SELLER_ID = "1"
"""VTEX's id for the store itself as the seller of its own SKUs (used in the simulation)."""

_LIST_SKUS = "/api/catalog_system/pvt/sku/stockkeepingunitidsbysaleschannel"
_SKU_CONTEXT = "/api/catalog_system/pvt/sku/stockkeepingunitbyid/{sku}"
_PRICE = "/pricing/prices/{sku}"
_COMPUTED_PRICES = "/pricing/prices/{sku}/computed"
_COMPUTED_PRICE = "/pricing/prices/{sku}/computed/{trade_policy}"
_INVENTORY = "/api/logistics/pvt/inventory/skus/{sku}"
_SIMULATION = "/api/checkout/pub/orderForms/simulation"


class _Answers(NamedTuple):
    """What VTEX answered for one SKU: ``computed`` is the trade policy's computed price,
    ``computed_prices`` every price table's (kept for the other trade policies)."""

    context: Any
    prices: Any
    computed: Any
    inventory: Any
    computed_prices: Any


class VtexSource:
    """The SKUs of one trade policy as a stream of records, like ``FileSource`` reads a file.

    ``records()`` yields, page by page in VTEX's listing order, a :class:`CatalogRecord` for
    every SKU and a :class:`MalformedRecord` (with the SKU id and the reason) for every SKU
    whose calls kept failing or whose data does not fit the model; the stream goes on past
    them. The order is the listing's whatever order the answers come back in. The calls go
    through a :class:`VtexReader` (its own, or one shared by the sources of a run): up to
    ``concurrency`` in flight, each VTEX API paced at its documented rate, the next pages read
    while the consumer works on this one; memory holds a few pages, whatever the store's size.

    ``complete`` is true only once the listing was read to its end: a listing page that
    keeps failing ends the stream with a last MalformedRecord, and the planner then
    withholds every delete rather than withdraw the SKUs it did not see.

    Retries (:attr:`retry`, a :class:`~engine.connectors.RetryPolicy`): 429 and 5xx (waiting
    what Retry-After says) and transport errors, up to ``max_attempts`` calls with exponential
    backoff from ``backoff`` seconds and jitter, no wait longer than ``max_wait``. Other 4xx
    are not retried: the request is wrong, or the SKU is gone. 401/403 raise :class:`VtexAccessError`.

    ``pricing_url`` is where the Pricing API lives (``https://api.vtex.com/{account}``); None
    sends its calls to the client's base URL, as the stand-in serves every API on one host.
    """

    def __init__(
        self,
        client: httpx.Client | httpx.AsyncClient,
        trade_policy: str,
        page_size: int = DEFAULT_PAGE_SIZE,
        *,
        pricing_url: str | None = None,
        seller_id: str = SELLER_ID,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owns_client: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        reader: VtexReader | None = None,
        shared: SharedAnswers | None = None,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.client = client
        self.trade_policy = str(trade_policy)
        self.page_size = page_size
        self.pricing_url = pricing_url.rstrip("/") if pricing_url else ""
        self.seller_id = seller_id
        if reader is None:
            retry = _retry_policy(max_attempts, backoff, max_wait)
            reader = VtexReader(client, retry, concurrency=concurrency, sleep=sleep, owns_client=owns_client)
            self._owns_reader = True
        else:
            self._owns_reader = False
        self.reader = reader
        self.retry = reader.retry
        self.shared = shared
        """Answers that do not depend on the trade policy, shared with a run's other trade policies."""
        self._clock = clock
        self.count = 0
        self.errors = 0
        self.complete = False
        self._counted = (0, 0)

    def __repr__(self) -> str:
        return f"VtexSource({str(self.client.base_url)!r}, trade_policy={self.trade_policy!r})"

    @property
    def requests(self) -> int:
        """Requests sent (retries included) since the last read began."""
        return self.reader.requests - self._counted[0]

    @property
    def retries(self) -> int:
        return self.reader.retries - self._counted[1]

    def __iter__(self) -> Iterator[SourceItem]:
        return self.records()

    def __enter__(self) -> VtexSource:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the reader (and the client, if it was built for this source) unless it is shared."""
        if self._owns_reader:
            self.reader.close()

    def records(self) -> Iterator[SourceItem]:
        """Every SKU of the trade policy, good and malformed alike; can be called again to re-read."""
        self.count = self.errors = 0
        self.complete = False
        self._counted = (self.reader.requests, self.reader.retries)
        listed: list[bool] = []
        for item in self.reader.stream(lambda: self._pages(listed)):
            yield self._tally(item)
        self.complete = bool(listed)

    async def _pages(self, listed: list[bool]) -> AsyncIterator[Awaitable[list[SourceItem]]]:
        """The listing page by page; a SKU listed twice is fetched once and reported the second time.

        The first page's first SKU is a chunk of its own (the reader's slow start); ``listed``
        gets a value once the listing was read to its end.
        """
        with closing(FirstSeen()) as first_seen:  # made on the reader's thread, which uses it
            previous: list[str] | None = None
            for page in itertools.count(1):
                try:
                    ids = await self._sku_ids(page)
                except CallFailed as failure:
                    yield _ready(self._stopped(page, str(failure)))
                    return
                if not ids:
                    break
                if ids == previous:  # a server that ignores `page` would otherwise loop forever
                    yield _ready(self._stopped(page, "VTEX answered the same ids as the page before"))
                    return
                promotions = asyncio.ensure_future(self._promotions(ids))
                for part in (ids[:1], ids[1:]) if page == 1 else (ids,):
                    yield asyncio.gather(
                        *(self._listed(sku_id, page, first_seen, promotions) for sku_id in part)
                    )
                previous = ids
        listed.append(True)

    def _listed(
        self,
        sku_id: str,
        page: int,
        first_seen: FirstSeen,
        promotions: Awaitable[dict[str, Decimal] | CallFailed],
    ) -> Awaitable[SourceItem]:
        """The SKU's record to come, or at once a duplicate's report (checked here, in listing order)."""
        if (first := first_seen.first(sku_id, page)) is not None:
            # Paging drifts when the catalog changes under it; the SKU was read already.
            reason = f"duplicate: VTEX listed it on page {first[0]} already; a SKU is read once"
            return _settled(MalformedRecord(sku_id, [("sku.id", reason)]))
        return self._record(sku_id, promotions)

    def records_for(
        self, sku_ids: Sequence[str], changed: Mapping[str, Changed] | None = None
    ) -> Iterator[SourceItem]:
        """Just these SKUs (the lines of incoming orders, notified changes), without listing the
        trade policy; in the order given, a page (one simulation) at a time.

        ``changed`` (what a notification said changed of each SKU) lets a source with
        :attr:`shared` answers re-read only that (:func:`~marketplaces.vtex._reader.reads_for`);
        a page's simulation then carries only the SKUs whose price is read, and none is sent
        when no SKU needs one.
        """
        for item in self.reader.stream(lambda: self._pages_of(sku_ids, changed)):
            yield self._tally(item)

    async def records_of(
        self, sku_ids: Sequence[str], changed: Mapping[str, Changed] | None = None
    ) -> list[SourceItem]:
        """:meth:`records_for` all at once, on the reader's loop (a batch of a sync worker, read in
        every trade policy by one hand-off to that loop: :meth:`VtexCatalogs.records_for`)."""
        items: list[SourceItem] = []
        async for page in self._pages_of(sku_ids, changed):
            items += await page
        return [self._tally(item) for item in items]

    async def _pages_of(
        self, sku_ids: Sequence[str], changed: Mapping[str, Changed] | None
    ) -> AsyncIterator[Awaitable[list[SourceItem]]]:
        """The records of these SKUs a page (one simulation) at a time, in the order given."""
        ids = [str(sku_id) for sku_id in sku_ids]
        hints = changed or {}
        for start in range(0, len(ids), self.page_size):
            page = ids[start : start + self.page_size]
            reads = {sku_id: self._reads(sku_id, hints.get(sku_id)) for sku_id in page}
            priced = [sku_id for sku_id in page if reads[sku_id].priced]
            promotions = asyncio.ensure_future(self._promotions(priced) if priced else _no_promotions())
            yield asyncio.gather(*(self._record(sku_id, promotions, reads[sku_id]) for sku_id in page))

    def _reads(self, sku_id: str, changed: Changed | None = None) -> Reads:
        return reads_for(self.shared, sku_id, self.trade_policy, changed)

    # -- one page, one SKU -------------------------------------------------------------------

    async def _sku_ids(self, page: int) -> list[str]:
        """One page of the trade policy's SKU ids; the listing ends at the first empty page.

        Not at the first short page: a server that caps the page size below the one asked
        would end the listing early and silently drop SKUs.
        """
        params: dict[str, str | int] = {
            "sc": self.trade_policy,
            "page": page,
            "pageSize": self.page_size,
            "onlyAssigned": "true",
        }
        answer = await self.reader.call("GET", _LIST_SKUS, params)
        if not isinstance(answer, list) or not all(_is_id(item) for item in answer):
            raise CallFailed(f"GET {_LIST_SKUS} did not answer a list of SKU ids")
        return [str(item) for item in answer]

    async def _promotions(self, ids: Sequence[str]) -> dict[str, Decimal] | CallFailed:
        """Per-unit promotional prices of a page (one simulation), or why they are unknown."""
        body = {"items": [{"id": sku_id, "quantity": 1, "seller": self.seller_id} for sku_id in ids]}
        try:
            return promotional_prices(
                await self.reader.call("POST", _SIMULATION, {"sc": self.trade_policy}, body)
            )
        except CallFailed as failure:
            return failure
        except VtexShapeError as error:
            return CallFailed(error.message)

    async def _answers(self, sku_id: str, reads: Reads) -> _Answers:
        """The SKU's context, prices, computed prices of every price table and inventory: those
        ``reads`` asks for from VTEX, all at once, the others as kept; then the trade policy's
        computed price. The first failure in that order is raised; a 404 for the context means
        VTEX no longer has the SKU; a 404 for the computed prices, that no price table has a
        fixed price (the trade policy's own call decides). VtexShapeError when the computed
        prices are not a list of objects."""
        if reads.notified and reads.kept is not None and not reads.context:
            self._check_sold_here(sku_id, reads.kept.context)
        quoted = quote(sku_id, safe="")
        calls: dict[int, Awaitable[Any]] = {}
        if reads.context:
            calls[0] = self.reader.call("GET", _SKU_CONTEXT.format(sku=quoted), {"sc": self.trade_policy})
        if reads.prices:
            calls[1] = self.reader.call("GET", self.pricing_url + _PRICE.format(sku=quoted), None)
            calls[2] = self.reader.call("GET", self.pricing_url + _COMPUTED_PRICES.format(sku=quoted), None)
        if reads.inventory:
            calls[3] = self.reader.call("GET", _INVENTORY.format(sku=quoted), None)
        got = dict(zip(calls, await asyncio.gather(*calls.values(), return_exceptions=True), strict=True))
        context = got.get(0)
        if isinstance(context, CallFailed) and context.status == 404:
            context.gone = True  # the SKU's own record: VTEX no longer has the SKU
            if self.shared is not None:
                self.shared.forget(sku_id)
        every_table = got.get(2)
        if isinstance(every_table, CallFailed) and every_table.status == 404:
            got[2] = []
        for answer in got.values():
            if isinstance(answer, BaseException):
                raise answer
        kept = reads.kept
        was = [kept.context, kept.prices, kept.computed, kept.inventory] if kept is not None else [None] * 4
        context, prices, computed_prices, inventory = (got.get(index, was[index]) for index in range(4))
        if reads.priced:
            computed = await self._computed_price(quoted, computed_prices)
        else:
            assert reads.kept_priced is not None  # reads_for asks for the prices when none are kept
            computed = reads.kept_priced[0]
        return _Answers(context, prices, computed, inventory, computed_prices)

    async def _computed_price(self, quoted_sku: str, computed_prices: Any) -> Any:
        """The trade policy's computed price: its entry of every price table's, else the answer
        of its own call (``GET .../computed/{tradePolicyId}``)."""
        entry = computed_in(computed_prices, self.trade_policy)
        if entry is not None:
            return entry
        policy = quote(self.trade_policy, safe="")
        url = self.pricing_url + _COMPUTED_PRICE.format(sku=quoted_sku, trade_policy=policy)
        return await self.reader.call("GET", url, None)

    def _check_sold_here(self, sku_id: str, context: Any) -> None:
        """Raise what asking the context with this trade policy's ``sc`` would (404: VTEX no
        longer has the SKU here) when a context read for another does not list this trade policy
        in its ``SalesChannels``; nothing when the context does not say."""
        channels = context.get("SalesChannels") if isinstance(context, Mapping) else None
        if isinstance(channels, list) and self.trade_policy not in {str(c) for c in channels}:
            gone = CallFailed(f"SKU {sku_id} is not in trade policy {self.trade_policy} (its SalesChannels)")
            gone.gone = True
            raise gone

    async def _record(
        self,
        sku_id: str,
        promotions: Awaitable[dict[str, Decimal] | CallFailed],
        reads: Reads | None = None,
    ) -> SourceItem:
        reads = self._reads(sku_id) if reads is None else reads
        try:
            answers = await self._answers(sku_id, reads)
        except CallFailed as failure:
            return MalformedRecord(
                sku_id, [("", str(failure))], unavailable=failure.unavailable, missing=failure.gone
            )
        except VtexShapeError as error:
            return MalformedRecord(sku_id, [(error.field, error.message)])
        if reads.priced or reads.kept_priced is None:
            simulated = await promotions
            if isinstance(simulated, CallFailed):
                # Leaving it null would read as "the promotion ended" and be sent as such.
                reason = f"the checkout simulation of its page failed: {simulated}"
                return MalformedRecord(
                    sku_id, [("price.promotional", reason)], unavailable=simulated.unavailable
                )
            promotion = simulated.get(sku_id)
        else:
            promotion = reads.kept_priced[1]
        try:
            data = self._data(sku_id, answers, promotion)
        except VtexShapeError as error:
            return MalformedRecord(sku_id, [(error.field, error.message)])
        self._keep(sku_id, reads, answers, promotion)
        try:
            return CatalogRecord.parse(data)
        except MalformedRecord as error:
            return error if error.sku_id else MalformedRecord(sku_id, error.errors)

    def _data(self, sku_id: str, answers: _Answers, promotion: Decimal | None) -> dict[str, Any]:
        """The canonical record's data from VTEX's answers; VtexShapeError when they do not fit."""
        context, prices, computed, inventory, _ = answers
        for name, answer in zip(
            ("SKU context", "price", "computed price", "inventory"), answers[:4], strict=True
        ):
            if not isinstance(answer, Mapping):
                raise VtexShapeError("", f"the VTEX {name} answer is not a JSON object")
        if str(context.get("Id")) != sku_id:
            raise VtexShapeError("sku.id", f"VTEX answered SKU {context.get('Id')!r} for SKU {sku_id}")
        return vtex_record(context, prices, computed, inventory, promotion, self.trade_policy, self._clock())

    def _keep(self, sku_id: str, reads: Reads, answers: _Answers, promotion: Decimal | None) -> None:
        """Keep what was read of a SKU whose record could be built, for the next trade policy and
        the next notification."""
        shared = self.shared
        if shared is None:
            return
        if reads.context or reads.prices or reads.inventory:
            read_at = None if reads.context or reads.kept is None else reads.kept.read_at
            kept = [answers.context, answers.prices, answers.computed_prices, answers.inventory]
            shared.put(sku_id, kept, read_at)
        if reads.priced:
            shared.put_priced(sku_id, self.trade_policy, [answers.computed, promotion])

    def _stopped(self, page: int, reason: str) -> MalformedRecord:
        message = (
            f"listing the SKUs of trade policy {self.trade_policy} stopped at page {page}: {reason}; "
            "the SKUs after it were not read"
        )
        return MalformedRecord(None, [("", message)])

    def _tally(self, item: SourceItem) -> SourceItem:
        if isinstance(item, MalformedRecord):
            self.errors += 1
        else:
            self.count += 1
        return item


def _retry_policy(max_attempts: int = 4, backoff: float = 0.5, max_wait: float = 60.0) -> RetryPolicy:
    """How a VTEX call is retried: ``max_attempts`` tries, backoff from ``backoff`` with jitter,
    no wait (Retry-After included) longer than ``max_wait``."""
    return RetryPolicy(
        attempts=max_attempts, base=backoff, cap=max_wait, jitter=(0.5, 1.0), retry_after_cap=max_wait
    )


async def _ready(item: SourceItem) -> list[SourceItem]:
    return [item]


async def _settled(item: SourceItem) -> SourceItem:
    return item


async def _no_promotions() -> dict[str, Decimal] | CallFailed:
    """A page none of whose SKUs needs the simulation."""
    return {}


def vtex_records(
    source_config: SourceConfig,
    project_folder: Path,
    client: httpx.Client | httpx.AsyncClient | None = None,
    *,
    trade_policy: str = "1",
    page_size: int = DEFAULT_PAGE_SIZE,
) -> VtexSource:
    """The VTEX source a project config describes.

    Builds the client: base URL ``https://{account}.{environment}.com.br`` (or the config's
    ``base_url``, which the sandbox sets and which then serves the Pricing API too), the
    AppKey from the variable ``app_key_env``, the AppToken from the file ``app_token_file``
    (relative to the project folder) or the variable ``app_token_env``. The token is
    registered with the redactor, so no error or log line can show it. Its calls go
    ``source.concurrency`` at a time.

    ``client``, when given (a test, the sandbox), is used for its transport and base URL;
    only the credential headers are set on it, so the config's secrets are still the ones read.
    """
    if source_config.type != "vtex":
        raise ConfigError(f"source type '{source_config.type}' is not a VTEX source")
    account = source_config.account
    pricing_url = None if source_config.base_url else f"https://api.vtex.com/{account}"
    options: dict[str, Any] = {"pricing_url": pricing_url, "concurrency": source_config.concurrency}
    base_url, credentials = vtex_account(source_config, project_folder, "source")
    if client is not None:
        client.headers.update(credentials)
        return VtexSource(client, trade_policy, page_size, **options)
    built = vtex_client(base_url, credentials, source_config.concurrency)
    return VtexSource(built, trade_policy, page_size, owns_client=True, **options)


def vtex_client(base_url: str, credentials: Mapping[str, str], concurrency: int) -> httpx.AsyncClient:
    """The client the VTEX source builds: JSON, the credentials, connections for the concurrency."""
    return Client(
        base_url=base_url,
        headers={**credentials, "Accept": "application/json", "Content-Type": "application/json"},
        timeout=httpx.Timeout(30.0, connect=10.0),
        transport=AiohttpTransport(concurrency),
    )


class VtexCatalogs(Catalogs):
    """The catalogs of a run's trade policies, sharing what does not depend on the trade policy.

    The SKU context, prices, computed prices of every price table and inventory are the same in
    every trade policy: the first trade policy that lists a SKU asks for them (4 requests), the
    others find them in the run's :class:`~marketplaces.vtex._reader.SharedAnswers`, take their
    own entry of the computed prices, and ask only for their own listing and simulation pages
    (and their own computed price when the computed prices have no entry for them). Three
    marketplaces then cost about 4.1 requests per SKU instead of 12. The answers are the ones
    read at the start of the run; a run is minutes. Each trade policy is read by the source
    ``vtex_records`` builds, closed with the run.

    A sync worker keeps one for its life and reads each batch with :meth:`records_for`: a round
    of the shared answers, so a notified SKU is read once for every trade policy, and only what
    its notification says changed is read again (the rest as kept, for up to
    :data:`~marketplaces.vtex._reader.ANSWERS_MAX_AGE`).
    """

    def __init__(self, config: SourceConfig, folder: Path) -> None:
        self.config, self.folder = config, folder
        self.shared = SharedAnswers()
        self._sources: list[VtexSource] = []
        self._batches: dict[str, VtexSource] = {}

    def records(self, trade_policy: str) -> VtexSource:
        source = vtex_records(self.config, self.folder, trade_policy=trade_policy)
        source.shared = self.shared
        self._sources.append(source)
        return source

    def new_batch(self) -> None:
        """A batch of SKUs in each trade policy: one round of the shared answers."""
        self.shared.new_round()

    def records_for(
        self,
        trade_policies: Sequence[str],
        sku_ids: Sequence[str],
        changed: Mapping[str, Changed] | None = None,
    ) -> dict[str, list[SourceItem]]:
        """A batch in every trade policy, one after the other (each reuses what the ones before
        read this round), in one hand-off to the reader's loop: a worker whose other threads keep
        the interpreter busy waits for its turn once per batch, not at each page of each trade
        policy. The trade policies' sources share one reader and client, kept for the next batch."""
        self.new_batch()
        sources = [self._batch_source(policy) for policy in trade_policies]
        if not sources:
            return {}

        async def every() -> dict[str, list[SourceItem]]:
            return {source.trade_policy: await source.records_of(sku_ids, changed) for source in sources}

        return sources[0].reader.run(every())

    def records_in(
        self, trade_policy: str, sku_ids: Sequence[str], changed: Mapping[str, Changed] | None
    ) -> list[SourceItem]:
        """From the trade policy's source, kept for the next batch."""
        return list(self._batch_source(trade_policy).records_for(sku_ids, changed))

    def _batch_source(self, trade_policy: str) -> VtexSource:
        """The trade policy's source for batches: the first one built owns the reader and client
        the others share."""
        if trade_policy not in self._batches:
            if not self._batches:
                self._batches[trade_policy] = self.records(trade_policy)
            else:
                first = next(iter(self._batches.values()))
                source = VtexSource(
                    first.client,
                    trade_policy,
                    first.page_size,
                    pricing_url=first.pricing_url or None,
                    seller_id=first.seller_id,
                    reader=first.reader,
                    shared=self.shared,
                )
                self._sources.insert(0, source)  # closed before the reader's owner
                self._batches[trade_policy] = source
        return self._batches[trade_policy]

    def close(self) -> None:
        for source in self._sources:
            source.close()
        self.shared.close()


def vtex_account(config: VtexAccount, project_folder: Path, where: str) -> tuple[str, dict[str, str]]:
    """The base URL and the AppKey/AppToken headers a VTEX account config names.

    The base URL is ``https://{account}.{environment}.com.br`` or the config's ``base_url``
    (the sandbox); the AppKey comes from ``app_key_file`` or the variable ``app_key_env``, the
    AppToken from ``app_token_file`` or ``app_token_env``, and is registered with the
    redactor, so no error or log line can show it. ``where`` names the config section in
    messages ("source", "orders.vtex").
    """
    account = config.account
    if not account and not config.base_url:
        raise ConfigError(f"{where}.account is required for VTEX (or {where}.base_url for a sandbox)")
    if config.app_key_file:
        app_key = read_secret(f"file:{config.app_key_file}", project_folder)
    else:
        app_key = _app_key(config.app_key_env)
    if config.app_token_file:
        app_token = read_secret(f"file:{config.app_token_file}", project_folder)
    else:
        app_token = read_secret(f"env:{config.app_token_env}")
    base_url = config.base_url or f"https://{account}.{config.environment}.com.br"
    return base_url, {"X-VTEX-API-AppKey": app_key, "X-VTEX-API-AppToken": app_token}


def _app_key(variable: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ConfigError(f"the VTEX AppKey is not set: export {variable} (source.app_key_env)")
    return check_header_value(f"env:{variable}", value)


def _is_id(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value != ""
    )


class VtexCatalogSource(Source):
    """VTEX as a catalog source and the account orders are placed in (``tradepost.sources``)."""

    name = "vtex"

    def records(self, config: SourceConfig, folder: Path, trade_policy: str = "1") -> VtexSource:
        return vtex_records(config, folder, trade_policy=trade_policy)

    def catalogs(self, config: SourceConfig, folder: Path) -> VtexCatalogs:
        return VtexCatalogs(config, folder)

    def account(self, config: VtexAccount, folder: Path, where: str) -> tuple[str, dict[str, str]]:
        return vtex_account(config, folder, where)

    def placement(self, client: httpx.AsyncClient, keys: Mapping[str, str], **options: Any) -> VtexOrders:
        return VtexOrders(client, keys["X-VTEX-API-AppKey"], keys["X-VTEX-API-AppToken"], **options)
