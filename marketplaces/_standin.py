"""What every stand-in server shares: a rate limit answered with 429, injected faults, a request log.

A stand-in is a small ASGI app (starlette) that speaks a marketplace's documented API,
keeps state in memory and validates requests the way the real API does. Tests mount it
in process with :meth:`Standin.transport`, or serve it on a loopback socket; `tradepost
sandbox` serves them all so a user can try rules end to end without credentials.

Faults are drawn from a seeded random generator so a failing test can be replayed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.jsonio import dumps

SANDBOX_PREFIX = "/_sandbox/"
"""Paths under this prefix are the sandbox's controls (e.g. ``POST /_sandbox/orders`` creates a
marketplace order), exempt from the rate limit and faults; no real API has them."""


@dataclass
class Faults:
    """Shares of requests (0..1) that misbehave, and how."""

    error_rate: float = 0.0
    """Answered 500 with the API's error shape."""
    throttle_rate: float = 0.0
    """Answered 429 with Retry-After, on top of the real rate limit."""
    slow_rate: float = 0.0
    slow_seconds: float = 0.5
    drop_rate: float = 0.0
    """The connection is dropped without an answer."""
    seed: int | None = 0


class DroppedConnection(Exception):
    """Raised inside the app to drop the connection; mapped to a transport error in process."""


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> float:
        """0 when a request may go now, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Standin:
    """Base of the stand-in servers: wraps a starlette app with limits, faults and a log."""

    name = "standin"

    def __init__(
        self, rate_limit: float | None = None, burst: float | None = None, faults: Faults | None = None
    ):
        self.faults = faults or Faults()
        self.random = random.Random(self.faults.seed)
        self.bucket = _Bucket(rate_limit, burst or max(1.0, rate_limit)) if rate_limit else None
        self.requests: Counter[str] = Counter()
        self.throttled = 0
        self.app: Starlette = self.build()

    # -- to be provided by each stand-in ----------------------------------------------------

    def build(self) -> Starlette:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        """The API's own error shape."""
        return {"error": message, "status": status}

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if str(scope["path"]).startswith(SANDBOX_PREFIX):
            # The sandbox's own controls (create an order, invoice it) are not the API under test:
            # no rate limit, no injected faults, not counted.
            await self.app(scope, receive, send)
            return
        self.requests[f"{scope['method']} {scope['path']}"] += 1
        if self.bucket is not None:
            wait = self.bucket.take()
            if wait > 0:
                self.throttled += 1
                await self._answer(send, 429, "rate limit exceeded", retry_after=wait)
                return
        faults, draw = self.faults, self.random.random()
        if draw < faults.drop_rate:
            raise DroppedConnection(f"{self.name}: connection dropped (injected)")
        draw -= faults.drop_rate
        if draw < faults.error_rate:
            await self._answer(send, 500, "internal error (injected)")
            return
        draw -= faults.error_rate
        if draw < faults.throttle_rate:
            self.throttled += 1
            await self._answer(send, 429, "too many requests (injected)", retry_after=0.05)
            return
        draw -= faults.throttle_rate
        if draw < faults.slow_rate:
            await asyncio.sleep(faults.slow_seconds)
        await self.app(scope, receive, send)

    async def _answer(self, send: Send, status: int, message: str, retry_after: float | None = None) -> None:
        headers = {"Retry-After": f"{max(retry_after, 0.001):.3f}"} if retry_after is not None else {}
        response = JSONResponse(self.error_body(status, message), status_code=status, headers=headers)
        await response({"type": "http"}, _no_receive, send)

    def transport(self) -> httpx.AsyncBaseTransport:
        """An in-process transport: a dropped connection surfaces as httpx's transport error."""
        return _StandinTransport(self)

    def total_requests(self) -> int:
        return sum(self.requests.values())


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


class _StandinTransport(httpx.ASGITransport):
    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except DroppedConnection as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from None


def exact_json(data: Any, status: int = 200) -> Response:
    """A JSON answer with exact decimals (``engine.jsonio``): prices go back digit for digit, as
    the real APIs write them, never through float."""
    return Response(dumps(data), status_code=status, media_type="application/json")


def int_param(request: Request, name: str, default: int | None = None) -> int | None:
    """A whole-number query parameter; ``default`` when absent, None when it is not a number."""
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return None
