"""VTEX's affiliate change notifications: the endpoint VTEX posts to, answering 2xx only once queued.

The contract (``shared/specs/vtex/NOTIFICATIONS.md``, sections 2 and 3):

- ``POST /api/notification`` (with or without the trailing slash) takes one SKU's notification:
  a JSON object whose keys match case-insensitively (``IdSku`` or ``idSKU``), ``IdSku`` a string
  or a number, unknown keys ignored. Its flags map to :class:`engine.state.Change`; a body that
  sets none means "something changed" and is queued as a catalog change.
- VTEX cannot sign its calls, so the registered URL carries a secret as its ``k`` query
  parameter, compared in constant time: missing or wrong -> 401, before the body is read.
- The body is read in chunks and refused past :data:`BODY_LIMIT` bytes (413), whatever
  ``Content-Length`` says; anything but a JSON object of that shape -> 400.
- 200 (empty body) is answered only after :meth:`engine.state.NotificationQueue.enqueue`
  committed; a state store that cannot take it -> 503, and nothing is acknowledged.
- ``GET /healthz``: the queue's counts, 503 when the state store cannot be read.

Every refusal is logged (``tradepost.serve``) with the client's address and the reason, never the
URL, its query string or the body: the secret travels in the one and the other can echo it.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine import TradepostError
from engine.state import Change, NotificationQueue

BODY_LIMIT = 16 * 1024
"""Bytes a notification body may have: one is a few hundred; a bigger one is not VTEX's."""

SECRET_PARAMETER = "k"
"""The query parameter of the registered URL that carries the secret (NOTIFICATIONS.md, section 1)."""

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


def notification_app(
    queue: NotificationQueue,
    secret: str,
    *,
    body_limit: int = BODY_LIMIT,
    queued: Callable[[], None] | None = None,
) -> Starlette:
    """The endpoint VTEX posts to, queueing into ``queue``; ``secret`` is the ``k`` the URL must carry;
    ``queued`` is called after each commit (it wakes the worker of `serve --sync`)."""
    expected = secret.encode("utf-8")

    def refuse(request: Request, status: int, reason: str) -> Response:
        client = request.client.host if request.client else "unknown"
        log.warning("refused a notification from %s: %s (%d)", client, reason, status)
        return Response(status_code=status)

    async def notification(request: Request) -> Response:
        given = request.query_params.get(SECRET_PARAMETER, "").encode("utf-8")
        if not hmac.compare_digest(given, expected):
            return refuse(request, 401, "the secret is missing or wrong")
        try:
            parsed = parse_notification(await read_body(request, body_limit))
        except BodyTooLarge as exc:
            return refuse(request, 413, str(exc))
        except BadNotification as exc:
            return refuse(request, 400, str(exc))
        changed_at = parsed.datemodified or datetime.now(UTC).isoformat()
        try:
            await run_in_threadpool(queue.enqueue, parsed.idsku, parsed.changes(), changed_at)
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
