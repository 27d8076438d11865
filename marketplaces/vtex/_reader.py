"""Reading VTEX fast and politely: every call of the VTEX source goes through one :class:`VtexReader`.

What a reader guarantees:

- **Bounded**: at most ``concurrency`` requests in flight (a semaphore), however many SKUs are
  being read;
- **Paced per API**: a :class:`~engine.connectors.TokenBucket` per VTEX API keeps each at or under
  the rate VTEX documents for it (:data:`API_RATES`); an API with no documented figure gets
  VTEX's highest documented read rate;
- **Retried by the one policy**: 429 (waiting what Retry-After asks), 5xx and transport errors
  through :class:`~engine.connectors.RetryPolicy`; other 4xx fail at once; 401/403 raise
  :class:`VtexAccessError`, whose message names the call and the License Manager resource and
  never the AppToken;
- **In order, a bounded distance ahead**: :meth:`VtexReader.stream` runs a producer of chunks
  (awaitables of record lists, in catalog order) on a private event loop in a daemon thread, and
  hands them to the synchronous consumer in the order they were queued, at most ``ahead`` chunks
  in advance: pages are read while the consumer runs rules, and memory does not grow with the
  catalog. Nothing past the first chunk starts before the consumer asks for a second (the VTEX
  source makes its first SKU a chunk of its own), so a refused key costs one SKU's calls; a
  consumer that stops early cancels what was read ahead;
- **Shared across trade policies** (:class:`SharedAnswers`): the answers that do not depend on
  the trade policy (SKU context, prices, the computed prices of every price table, inventory)
  kept for a run in a temporary SQLite file, so reading a second trade policy calls only what
  differs (its listing and simulation pages; its own computed price only when the computed
  prices have no entry for it); a sync worker keeps them (and each trade policy's prices) for
  its life, so a notified SKU re-reads only what changed.

The client may be an ``httpx.AsyncClient`` (VTEX itself, a loopback socket) or a synchronous
``httpx.Client`` (tests that mount the stand-in in process), whose calls then run on a thread pool
of ``concurrency`` workers under the same bound.
"""

from __future__ import annotations

import asyncio
import pickle
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import httpx

from engine import TradepostError
from engine.catalog import JsonLimitError, read_json
from engine.connectors import Changed, RetryPolicy, TokenBucket
from engine.secrets import redact, register

T = TypeVar("T")

DEFAULT_CONCURRENCY = 64
"""Requests in flight: with VTEX answering in ~50 ms, 4 requests per SKU at 235 SKUs/s need 47
(Little's law); the per-API buckets, not this bound, keep the rate within VTEX's limits."""

API_RATES: Mapping[str, float] = {
    "/api/catalog_system/": 250.0,
    "/pricing/": 750.0,
    "/api/logistics/": 750.0,
    "/api/checkout/": 750.0,
}
"""Requests per second per VTEX API (path part -> rate). The Catalog API documents "15,000
requests per minute per endpoint" and 45,000 per account (its OpenAPI ``info.description``):
250/s, for both of its endpoints together. The Pricing API documents no figure for GET ("Rate
limit under review"; 33/s is for POST and PUT), the Logistics and Checkout APIs none at all: they
get 750/s, the Catalog API's per-account figure, the highest read rate VTEX documents; a 429 from
any of them is still honoured."""

_RESOURCES = {
    "/api/catalog_system/": "Catalog: View Product (or SKUs)",
    "/pricing/": "Pricing: Read prices",
    "/api/logistics/": "Logistics: Logistics viewer (or inventory read only)",
}
"""Path part -> the License Manager resource an AppKey's role needs for it (from the specs)."""


class VtexAccessError(TradepostError):
    """VTEX refused the credentials (401) or the key's role lacks a resource (403).

    Raised, not yielded: every further call would be refused the same way, and a million
    malformed records would hide the one fix needed. The message names the call and the
    resource, never the AppToken.
    """

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class CallFailed(Exception):
    """A call that failed for good (a 4xx, or 5xx/429/transport errors on every attempt).

    ``unavailable`` when VTEX never answered usefully (every attempt 5xx, 429 or no answer): a
    later read may well succeed, unlike a 4xx or an answer that is not JSON.
    """

    def __init__(self, message: str, unavailable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.unavailable = unavailable
        self.status = status
        """The HTTP status VTEX refused the call with (None: no such answer)."""
        self.gone = False
        """The call was for the SKU's own record and VTEX answered 404: it no longer has the SKU."""


ANSWERS_MAX_AGE = 3600.0
"""Seconds a SKU's kept answers serve a notification that names what changed; older, the SKU is
read whole again (its context can change in ways no flag reports: see the README)."""


@dataclass(frozen=True)
class Kept:
    """A SKU's last answers that no trade policy changes, with when its context was last read
    (``read_at``, the reader's monotonic clock) and in which round (``round``). ``computed`` is
    ``GET /pricing/prices/{itemId}/computed``: the computed prices of every price table, each
    trade policy's entry among them."""

    context: Any
    prices: Any
    computed: Any
    inventory: Any
    read_at: float
    round: int


class SharedAnswers:
    """SKU id -> its last VTEX answers, in a temporary SQLite file: the context, prices, computed
    prices of every price table and inventory (which no trade policy changes) and, per trade
    policy, the computed price it took (its entry of those, or its own call's answer) and the
    promotional price the simulation gave.

    Two uses. A run reading several trade policies (one round) asks the first for the answers
    the others then reuse. A sync worker keeps them for its life, a round per batch, so that a
    notification that says only the stock (or the price) changed re-reads only that; an entry is
    trusted for :attr:`max_age` seconds after its last whole read.

    ``sqlite3.connect("")`` opens a private on-disk database that is deleted when closed, so a
    catalog of a million SKUs costs disk, not memory. Values are pickled (``Decimal`` prices digit
    for digit; a third of the CPU of JSON with exact numbers): the file is private to the process
    and holds only what this reader wrote.
    """

    def __init__(self, max_age: float = ANSWERS_MAX_AGE, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = sqlite3.connect("", check_same_thread=False)
        self._db.executescript(
            "CREATE TABLE answers (sku TEXT PRIMARY KEY, read_at REAL, round INTEGER, body BLOB NOT NULL);"
            "CREATE TABLE priced (sku TEXT, trade_policy TEXT, read_at REAL, body BLOB NOT NULL,"
            " PRIMARY KEY (sku, trade_policy));"
        )
        self.max_age, self.clock = max_age, clock
        self.round = 0
        """Answers put in the current round are fresh for every trade policy of it."""
        self.hits = 0
        self._this_round: dict[str, Kept] = {}
        """A worker's round (not a run's only one, which may be a million SKUs): its SKUs' entries
        as read or put, so that each trade policy after the first does not unpickle them again."""

    def new_round(self) -> None:
        """Begin a round (a worker's batch): what is kept is reused only where no change says otherwise."""
        self.round += 1
        self._this_round.clear()

    def get(self, sku_id: str) -> Kept | None:
        kept = self._this_round.get(sku_id)
        if kept is None:
            row = self._db.execute(
                "SELECT read_at, round, body FROM answers WHERE sku = ?", (sku_id,)
            ).fetchone()
            if row is None:
                return None
            context, prices, computed, inventory = pickle.loads(row[2])
            kept = Kept(context, prices, computed, inventory, float(row[0]), int(row[1]))
            self._remember(sku_id, kept)
        self.hits += 1
        return kept

    def _remember(self, sku_id: str, kept: Kept) -> None:
        if self.round:
            self._this_round[sku_id] = kept

    def stale(self, kept: Kept) -> bool:
        return self.clock() - kept.read_at > self.max_age

    def put(self, sku_id: str, answers: Sequence[Any], read_at: float | None = None) -> None:
        """Keep the context, prices, computed prices and inventory (in that order), read whole now
        (``read_at`` None) or with the context of an earlier read."""
        when = self.clock() if read_at is None else read_at
        self._db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
            (sku_id, when, self.round, pickle.dumps(list(answers), pickle.HIGHEST_PROTOCOL)),
        )
        context, prices, computed, inventory = answers
        self._remember(sku_id, Kept(context, prices, computed, inventory, when, self.round))

    def priced(self, sku_id: str, trade_policy: str, since: float) -> list[Any] | None:
        """The computed price and the promotional price last read in ``trade_policy``, unless
        read before ``since`` (the SKU's last whole read)."""
        row = self._db.execute(
            "SELECT body FROM priced WHERE sku = ? AND trade_policy = ? AND read_at >= ?",
            (sku_id, trade_policy, since),
        ).fetchone()
        return None if row is None else list(pickle.loads(row[0]))

    def put_priced(self, sku_id: str, trade_policy: str, answers: Sequence[Any]) -> None:
        """Keep a trade policy's prices of a SKU; not in a run's only round (round 0), which never
        asks for them again."""
        if not self.round:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO priced VALUES (?, ?, ?, ?)",
            (sku_id, trade_policy, self.clock(), pickle.dumps(list(answers), pickle.HIGHEST_PROTOCOL)),
        )

    def forget(self, sku_id: str) -> None:
        """Drop what is kept of a SKU VTEX no longer has."""
        self._this_round.pop(sku_id, None)
        self._db.execute("DELETE FROM answers WHERE sku = ?", (sku_id,))
        self._db.execute("DELETE FROM priced WHERE sku = ?", (sku_id,))

    def close(self) -> None:
        self._db.close()


_PARTIAL = Changed.PRICE | Changed.STOCK
"""The changes that can be read in part; any other flag (or none) means the whole SKU."""


@dataclass(frozen=True)
class Reads:
    """What to ask VTEX for one SKU in one trade policy; the rest comes from ``kept``/``priced``.

    ``simulation`` is the SKU's place in its page's checkout simulation (its promotional price).
    """

    context: bool = True
    prices: bool = True
    """The prices and the computed prices of every price table (neither depends on the trade policy)."""
    inventory: bool = True
    priced: bool = True
    """The computed price in the trade policy (its entry of the computed prices, read now or kept,
    else its own call), and the simulation."""
    kept: Kept | None = None
    kept_priced: list[Any] | None = None
    notified: bool = False
    """Read for a notification: a kept context (asked with another trade policy's ``sc``) must
    list this trade policy in its ``SalesChannels``, or the SKU is not sold in it."""


def reads_for(shared: SharedAnswers | None, sku_id: str, trade_policy: str, changed: Changed | None) -> Reads:
    """What a SKU's record needs read, given what changed (None: anything) and what is kept.

    - kept from this round (another trade policy of the same batch read it): only the trade
      policy's prices (its entry of the kept computed prices and the simulation), and those only
      when the price changed or none are kept for it since the SKU's last whole read; after a
      removal, the context too (asked with ``sc``, it answers 404 in a trade policy the SKU left);
    - nothing kept, kept longer than the bound, or a change other than price and stock: all;
    - price: the prices, the computed prices and the simulation; stock: the inventory.
    """
    if shared is None:
        return Reads()
    kept = shared.get(sku_id)
    priced = None if kept is None else shared.priced(sku_id, trade_policy, kept.read_at)
    whole = changed is None or not changed or bool(int(changed) & ~int(_PARTIAL))  # int: flags unknown too
    price = whole or priced is None or bool(changed is not None and changed & Changed.PRICE)
    if kept is not None and kept.round == shared.round:
        removed = changed is not None and bool(changed & Changed.REMOVED)
        return Reads(removed, False, False, price, kept, priced, notified=changed is not None)
    if kept is None or whole or shared.stale(kept):
        return Reads(kept=kept, kept_priced=priced)
    assert changed is not None
    stock = bool(changed & Changed.STOCK)
    return Reads(False, bool(changed & Changed.PRICE), stock, price, kept, priced, notified=True)


class VtexReader:
    """The calls of a VTEX source: bounded, paced per API, retried, on a private loop.

    ``requests`` and ``retries`` count every request sent and every retry. ``sleep`` is the
    blocking wait between tries (tests record it instead);
    it runs off the event loop, so a blocking one never stalls the other calls.
    """

    def __init__(
        self,
        client: httpx.Client | httpx.AsyncClient,
        retry: RetryPolicy,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        rates: Mapping[str, float] = API_RATES,
        sleep: Callable[[float], None] = time.sleep,
        owns_client: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.client = client
        self.retry = retry
        self.concurrency = concurrency
        self.rates = dict(rates)
        self.requests = self.retries = 0
        self._sleep = sleep
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vtex-reader", daemon=True)
        self._thread.start()
        self._threads = (
            ThreadPoolExecutor(concurrency, "vtex-call") if isinstance(client, httpx.Client) else None
        )
        # A source nobody closes (a run's catalog is read, then dropped) still closes its client
        # (aiohttp's connections log an error when dropped open) and stops its loop.
        owned = client if owns_client else None
        self._stop_loop = weakref.finalize(self, _stop, self._loop, self._thread, owned, self._threads)
        self._slots = self._on_loop(_semaphore(concurrency))
        self._buckets = {part: self._on_loop(_bucket(part, rate)) for part, rate in self.rates.items()}

    def _on_loop(self, work: Awaitable[T]) -> T:
        """Run ``work`` on the reader's loop and wait for its result (raising what it raises)."""
        return asyncio.run_coroutine_threadsafe(_awaited(work), self._loop).result()

    def run(self, work: Awaitable[T]) -> T:
        """Run ``work`` (calls of this reader) on its loop, from another thread, and wait for its
        result: one hand-off for all of it."""
        return self._on_loop(work)

    def close(self) -> None:
        """Close the client (when the reader owns it), the thread pool and the loop."""
        self._stop_loop()

    # -- the ordered stream ------------------------------------------------------------------

    def stream(self, chunks: Callable[[], AsyncIterator[Awaitable[list[T]]]], ahead: int = 2) -> Iterator[T]:
        """The items of ``chunks()``' awaitables, in the order they were produced, ``ahead`` chunks ahead.

        The producer runs on the reader's loop and may start a chunk's calls before the consumer
        wants it; the consumer pulls one chunk at a time. When the consumer stops early (or a
        chunk raises), the producer and every call it started are cancelled.
        """
        queue: asyncio.Queue[Awaitable[list[T]] | None] = self._on_loop(_queue(ahead))
        queued: list[Awaitable[list[T]]] = []
        producer: list[asyncio.Task[None]] = []
        wanted = asyncio.Event()  # set once the consumer asks for a second chunk
        asked = [0]

        async def produce() -> None:
            try:
                async for chunk in chunks():
                    queued.append(chunk)
                    await queue.put(chunk)
                    if not wanted.is_set():
                        await wanted.wait()  # slow start: the first chunk alone
            finally:
                if not producer[0].cancelling():  # cancelled: the consumer stopped, nobody waits
                    await queue.put(None)  # the end, or where the producer failed

        async def begin() -> None:
            producer.append(asyncio.get_running_loop().create_task(produce()))

        async def next_chunk() -> list[T] | None:
            asked[0] += 1
            if asked[0] > 1:
                wanted.set()
            chunk = await queue.get()
            if chunk is None:
                await producer[0]  # the producer's own failure surfaces here, in order
                return None
            queued.remove(chunk)
            return await chunk

        async def stop() -> None:
            """Cancel the producer and the chunks it queued (their calls with them)."""
            for work in (producer[0], *queued):
                if isinstance(work, asyncio.Future):
                    work.cancel()
            await asyncio.gather(producer[0], *queued, return_exceptions=True)

        self._on_loop(begin())
        try:
            while (items := self._on_loop(next_chunk())) is not None:
                yield from items
        finally:
            if not self._loop.is_closed():
                self._on_loop(stop())

    # -- one call ----------------------------------------------------------------------------

    async def call(
        self, method: str, url: str, params: Mapping[str, str | int] | None, body: Any = None
    ) -> Any:
        """The decoded JSON answer (numbers as Decimal), retrying what a retry can fix."""
        path = httpx.URL(url).path
        bucket = next((b for part, b in self._buckets.items() if part in path), None)

        async def attempt(n: int) -> httpx.Response:
            if bucket is not None:
                await bucket.acquire()
            async with self._slots:
                self.requests += 1
                response = await self._send(method, url, params, body)
            status = response.status_code
            if status in (401, 403):
                raise VtexAccessError(self._refused(method, path, response), status)
            if 400 <= status < 500 and status != 429:
                reason = f"{method} {path} answered {status} {response.reason_phrase}{_detail(response)}"
                raise CallFailed(self.scrub(reason), status=status)
            return response

        try:
            response = await self.retry.run_async(attempt, sleep=self._wait, on_retry=self._count_retry)
        except httpx.TransportError as error:
            problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        else:
            status = response.status_code
            if not self.retry.retryable(response):
                return _json_answer(method, path, response)
            problem = f"{status} {response.reason_phrase}{_detail(response)}"
        raise CallFailed(
            self.scrub(f"{method} {path} failed {self.retry.attempts} times, last with {problem}"),
            unavailable=True,
        )

    async def _send(
        self, method: str, url: str, params: Mapping[str, str | int] | None, body: Any
    ) -> httpx.Response:
        if isinstance(self.client, httpx.AsyncClient):
            return await self.client.request(method, url, params=params, json=body)
        send = partial(self.client.request, method, url, params=params, json=body)
        return await asyncio.get_running_loop().run_in_executor(self._threads, send)

    async def _wait(self, seconds: float) -> None:
        if self._sleep is time.sleep:
            await asyncio.sleep(seconds)
        else:
            await asyncio.get_running_loop().run_in_executor(None, self._sleep, seconds)

    def _count_retry(self, attempt: int, wait: float) -> None:
        self.retries += 1

    def _refused(self, method: str, path: str, response: httpx.Response) -> str:
        status = response.status_code
        if status == 401:
            advice = "check the AppKey and AppToken it reads (source.app_key_env, and source.app_token_env"
            advice += " or source.app_token_file)"
        else:
            resource = next((r for part, r in _RESOURCES.items() if part in path), "access to this API")
            advice = f"the AppKey's role must grant {resource}"
        message = (
            f"VTEX refused {method} {path} ({status} {response.reason_phrase}{_detail(response)}): {advice}"
        )
        return self.scrub(message)

    def scrub(self, text: str) -> str:
        """The text without any registered secret, nor the AppToken this client sends (registered
        here, so that it is masked whole, in every encoded form, even when a shorter secret it
        contains is registered too)."""
        token = self.client.headers.get("X-VTEX-API-AppToken")
        if token:
            register(token)
        return redact(text)


def _stop(
    loop: asyncio.AbstractEventLoop,
    thread: threading.Thread,
    client: httpx.Client | httpx.AsyncClient | None,
    threads: ThreadPoolExecutor | None,
) -> None:
    """Close a reader's own client, then stop its loop and thread, and close the loop."""
    if loop.is_closed():
        return
    if isinstance(client, httpx.Client):
        client.close()
    elif client is not None and threading.current_thread() is not thread:
        closing = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
        with suppress(Exception):  # a client that fails to close still lets the loop stop
            closing.result(timeout=10)
    if threads is not None:
        threads.shutdown(wait=False, cancel_futures=True)
    loop.call_soon_threadsafe(loop.stop)
    if threading.current_thread() is not thread:
        thread.join(timeout=10)
        loop.close()


async def _awaited(work: Awaitable[T]) -> T:
    return await work


async def _semaphore(size: int) -> asyncio.Semaphore:
    return asyncio.Semaphore(size)


async def _bucket(part: str, rate: float) -> TokenBucket:
    """A VTEX API's bucket, made on the reader's loop; a tenth of a second's requests may go at once."""
    return TokenBucket(rate, burst=max(1.0, rate / 10), name=f"VTEX {part}")


async def _queue(size: int) -> asyncio.Queue[Any]:
    return asyncio.Queue(maxsize=size)


def _json_answer(method: str, path: str, response: httpx.Response) -> Any:
    """A successful answer's JSON (numbers as Decimal); :class:`CallFailed` when it has none."""
    status = response.status_code
    try:
        return read_json(response.content)
    except JsonLimitError as error:
        raise CallFailed(f"{method} {path} answered {status} with a body past a limit: {error}") from None
    except ValueError:
        raise CallFailed(f"{method} {path} answered {status} with a body that is not JSON") from None


def _detail(response: httpx.Response) -> str:
    """VTEX's own error message, shortened, for a failure report ("" when it gave none)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
    else:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            text = str(error.get("message") or "")
        elif isinstance(body, dict):
            text = str(body.get("Message") or body.get("message") or error or "")
        else:
            text = str(body)
    text = " ".join(text.split())
    return f": {text[:200]}" if text else ""
