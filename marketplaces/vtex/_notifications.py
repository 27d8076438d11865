"""VTEX's affiliate change notifications: the endpoint VTEX posts to, answering 2xx only once queued.

The contract (``shared/specs/vtex/NOTIFICATIONS.md``, sections 2 and 3):

- ``POST /api/notification`` (with or without the trailing slash) takes one SKU's notification:
  a JSON object whose keys match case-insensitively (``IdSku`` or ``idSKU``), ``IdSku`` a string
  or a number, unknown keys ignored. Its flags map to :class:`engine.state.Change`; a body that
  sets none means "something changed" and is queued as a catalog change.
- Each client address may send :attr:`ClientLimits.rate` notifications a second (a second's worth
  at once): over it -> 429 with ``Retry-After``, before anything else is looked at, so a flood or
  a secret being guessed costs no body read and no commit.
- VTEX cannot sign its calls, so the registered URL carries a secret as its ``k`` query
  parameter, compared in constant time: missing or wrong -> 401, before the body is read.
- A notification whose ``An`` is not the configured account, or whose ``IdAffiliate`` is none of
  the configured affiliates -> 403, not queued (:class:`Integrations`; nothing configured: any).
- The body is read in chunks and refused past :data:`BODY_LIMIT` bytes (413), whatever
  ``Content-Length`` says; anything but a JSON object of that shape -> 400.
- 200 (empty body) is answered only after the transaction holding the notification committed
  (those arriving together share one: :class:`GroupCommit`); a state store that cannot take it
  -> 503, and nothing is acknowledged.
- ``GET /healthz``: the queue's counts, 503 when the state store cannot be read; never rate-limited.

Every refusal is logged (``tradepost.serve``) with the client's address and the reason, never the
URL, its query string or the body: the secret travels in the one and the other can echo it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine import TradepostError
from engine.connectors import TokenBucket
from engine.state import Change, NotificationQueue

BODY_LIMIT = 16 * 1024
"""Bytes a notification body may have: one is a few hundred; a bigger one is not VTEX's."""

SECRET_PARAMETER = "k"
"""The query parameter of the registered URL that carries the secret (NOTIFICATIONS.md, section 1)."""

MAX_CLIENTS = 10_000
"""Client addresses whose buckets are kept; past it, the idle ones (full again) are dropped first."""

log = logging.getLogger("tradepost.serve")


class VtexNotification(BaseModel):
    """One SKU's change notification, keys lower-cased first (VTEX's two casings are one)."""

    model_config = ConfigDict(extra="ignore")

    idsku: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    productid: StrictInt | None = None
    an: Annotated[str, Field(max_length=128)] | None = None
    idaffiliate: Annotated[str, Field(max_length=16)] | None = None
    datemodified: Annotated[str, Field(max_length=64)] | None = None
    isactive: StrictBool = True
    stockmodified: StrictBool = False
    pricemodified: StrictBool = False
    hasstockkeepingunitmodified: StrictBool = False
    hasstockkeepingunitremovedfromaffiliate: StrictBool = False

    @field_validator("idsku", mode="before")
    @classmethod
    def _number_or_text(cls, value: object) -> object:
        """The Broadcaster's own example sends the SKU id as a bare number."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        return value

    def changes(self) -> Change:
        """What to read again: every flag set, REMOVED for a deactivated SKU, CATALOG when none is."""
        changes = Change(0)
        for flag, on in (
            (Change.PRICE, self.pricemodified),
            (Change.STOCK, self.stockmodified),
            (Change.CATALOG, self.hasstockkeepingunitmodified),
            (Change.REMOVED, self.hasstockkeepingunitremovedfromaffiliate or not self.isactive),
        ):
            if on:
                changes |= flag
        return changes or Change.CATALOG


_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _shown(value: str | None) -> str:
    """A body's value for a log line: quoted when it reads as a name, else only described."""
    if value is None:
        return "none"
    return repr(value) if _NAME.fullmatch(value) else "one that is not a name"


@dataclass(frozen=True)
class Integrations:
    """The VTEX account and affiliates this endpoint takes notifications for (NOTIFICATIONS.md,
    section 3, item 2): ``account`` None or ``affiliates`` empty checks nothing for that field."""

    account: str | None = None
    affiliates: frozenset[str] = frozenset()

    @classmethod
    def of(cls, account: str | None, affiliates: Collection[str]) -> Integrations:
        return cls(account, frozenset(a.upper() for a in affiliates))

    @property
    def checked(self) -> bool:
        return self.account is not None or bool(self.affiliates)

    def refusal(self, notification: VtexNotification) -> str | None:
        """Why ``notification`` is for none of these integrations; None when it is for one."""
        an, affiliate = notification.an, notification.idaffiliate
        if self.account is not None and (an or "").casefold() != self.account.casefold():
            return f"its account (An) is {_shown(an)}, not the configured one"
        if self.affiliates and (affiliate or "").upper() not in self.affiliates:
            return f"its affiliate (IdAffiliate) is {_shown(affiliate)}, not a configured one"
        return None


class _OverLimit(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


async def _refuse_to_wait(seconds: float) -> None:
    """A :class:`TokenBucket` sleep that does not: the bucket is left as it was, no token taken."""
    raise _OverLimit(seconds)


class ClientLimits:
    """One :class:`~engine.connectors.TokenBucket` per client address, at ``rate`` a second with a
    second's worth at once; the bucket's sleep refuses, so an empty bucket answers "retry in N s"
    instead of holding the request. At most ``clients`` buckets are kept (see :data:`MAX_CLIENTS`)."""

    def __init__(
        self, rate: float, clients: int = MAX_CLIENTS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst = rate, max(1.0, rate)
        self.clients, self.clock = clients, clock
        self.buckets: dict[str, TokenBucket] = {}
        self.over: set[str] = set()
        """Clients refused since their last request let through: one log line per run of refusals."""

    async def wait(self, client: str) -> float:
        """0 when ``client`` may send now (its token taken), else the seconds until it may."""
        bucket = self.buckets.get(client)
        if bucket is None:
            self._make_room()
            bucket = self.buckets[client] = TokenBucket(
                self.rate, self.burst, clock=self.clock, sleep=_refuse_to_wait, name=client
            )
        try:
            await bucket.acquire()
        except _OverLimit as over:
            return over.wait
        self.over.discard(client)
        return 0.0

    def first_refusal(self, client: str) -> bool:
        """Whether this refusal of ``client`` is the first since one of its requests was let through."""
        first = client not in self.over
        self.over.add(client)
        return first

    def _make_room(self) -> None:
        if len(self.buckets) < self.clients:
            return
        refilled = self.clock() - self.burst / self.rate  # a bucket idle since then is full: as new
        for client in [c for c, b in self.buckets.items() if b.updated <= refilled]:
            self._forget(client)
        while len(self.buckets) >= self.clients:  # all busy: the longest known goes
            self._forget(next(iter(self.buckets)))

    def _forget(self, client: str) -> None:
        del self.buckets[client]
        self.over.discard(client)


class BadNotification(TradepostError):
    """A body that is not one SKU's notification; the message says why without quoting it."""


class BodyTooLarge(TradepostError):
    """A body longer than the endpoint takes."""


def parse_notification(body: bytes) -> VtexNotification:
    """The notification in ``body``, or :class:`BadNotification` naming what is wrong (not the values)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise BadNotification("the body is not JSON") from None
    if not isinstance(document, dict):
        raise BadNotification(f"the body is a JSON {type(document).__name__}, not an object")
    try:
        return VtexNotification.model_validate({str(k).lower(): v for k, v in document.items()})
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in error["loc"]) or "body" for error in exc.errors()})
        raise BadNotification(f"wrong or missing field(s): {', '.join(fields)}") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read in the chunks it arrives in; :class:`BodyTooLarge` as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class GroupCommit:
    """Notifications queued from the event loop: those that arrive while a commit runs wait for the
    next, which takes them all (:meth:`~engine.state.NotificationQueue.enqueue_many`, one
    transaction on one worker thread). Each caller returns once the transaction holding its
    notification committed, or raises what failed it. Handing every notification to a thread of
    its own cost `serve` a third of its CPU at 300 notifications a second (the thread pool's
    wake-ups and locks), more than the commits."""

    def __init__(self, queue: NotificationQueue) -> None:
        self.queue = queue
        self._waiting: list[tuple[tuple[str, Change, str], asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def enqueue(self, sku_id: str, changes: Change, changed_at: str) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(((sku_id, changes, changed_at), done))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_all())
        await asyncio.shield(done)  # a caller gone (the client hung up) cancels only its own wait

    async def _commit_all(self) -> None:
        batch: list[tuple[tuple[str, Change, str], asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await asyncio.to_thread(self.queue.enqueue_many, [each for each, _ in batch])
                except Exception as exc:  # none of them was acknowledged
                    for _, done in batch:
                        done.set_exception(exc)
                        done.exception()  # retrieved: a caller gone (hung up) leaves no log of it
                else:
                    for _, done in batch:
                        done.set_result(None)
        finally:
            self._committer = None
            for _, done in batch:  # cancelled mid-commit (the loop stops): none is acknowledged
                if not done.done():
                    done.cancel()


def notification_app(
    queue: NotificationQueue,
    secret: str,
    *,
    integrations: Integrations = Integrations(),
    limits: ClientLimits | None = None,
    body_limit: int = BODY_LIMIT,
    queued: Callable[[], None] | None = None,
) -> Starlette:
    """The endpoint VTEX posts to, queueing into ``queue``; ``secret`` is the ``k`` the URL must carry,
    ``integrations`` whose notifications are taken, ``limits`` how many a client may send (None: no
    limit); ``queued`` is called after each commit (it wakes the worker of `serve --sync`)."""
    expected = secret.encode("utf-8")
    commits = GroupCommit(queue)

    def refuse(request: Request, status: int, reason: str) -> Response:
        reason = reason.replace(secret, "<the secret>")  # a body's value quoted may be anything
        log.warning("refused a notification from %s: %s (%d)", _client(request), reason, status)
        return Response(status_code=status)

    def slow_down(request: Request, wait: float) -> Response:
        """429, logged once per run of refusals: a flood must not flood the log too."""
        assert limits is not None
        if limits.first_refusal(_client(request)):
            refuse(
                request, 429, f"over {limits.rate:g} a second (the next are not logged until it slows down)"
            )
        return Response(status_code=429, headers={"Retry-After": str(max(1, math.ceil(wait)))})

    async def notification(request: Request) -> Response:
        wait = await limits.wait(_client(request)) if limits is not None else 0.0
        if wait > 0:
            return slow_down(request, wait)
        given = request.query_params.get(SECRET_PARAMETER, "").encode("utf-8")
        if not hmac.compare_digest(given, expected):
            return refuse(request, 401, "the secret is missing or wrong")
        try:
            parsed = parse_notification(await read_body(request, body_limit))
        except BodyTooLarge as exc:
            return refuse(request, 413, str(exc))
        except BadNotification as exc:
            return refuse(request, 400, str(exc))
        if (mismatch := integrations.refusal(parsed)) is not None:
            return refuse(request, 403, mismatch)
        changed_at = parsed.datemodified or datetime.now(UTC).isoformat()
        try:
            await commits.enqueue(parsed.idsku, parsed.changes(), changed_at)
        except TradepostError as exc:  # the state store cannot take it: VTEX must not think it was
            return refuse(request, 503, f"it could not be queued: {exc}")
        if queued is not None:
            queued()
        log.info("queued SKU %s (%s)", parsed.idsku, parsed.changes().name)
        return Response(status_code=200)

    async def healthz(request: Request) -> Response:
        try:
            counts = await run_in_threadpool(queue.counts)
        except TradepostError as exc:
            log.warning("health check failed: %s", exc)
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok", **counts.to_dict()})

    return Starlette(
        routes=[
            Route("/api/notification", notification, methods=["POST"]),
            Route("/api/notification/", notification, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
