"""What every stand-in server shares: a rate limit answered with 429, injected faults, a request log,
and the small pieces each one composes instead of writing again.

A stand-in is a small ASGI app (starlette) that speaks a marketplace's documented API,
keeps state in memory and validates requests the way the real API does. Tests mount it
in process with :meth:`Standin.transport`, or serve it on a loopback socket; `tradepost
sandbox` serves them all so a user can try rules end to end without credentials
(:meth:`Standin.for_sandbox` is how the sandbox makes one).

Faults are drawn from a seeded random generator so a failing test can be replayed.

The pieces, each used by several stand-ins and none knowing which:

- :class:`AccessTokens`: an OAuth token endpoint's refresh-token grant and the access tokens it
  issued, with their expiry on a clock the stand-in chooses;
- :class:`Refusal`, :func:`answer_refusal` and :func:`error_handlers`: an answer raised from
  anywhere in a handler in the API's error shape, and the app's answers to refusals and to
  unknown routes;
- :func:`form_body`, :func:`json_body`, :func:`json_object`, :func:`json_or_none`, :func:`exact_json`,
  :func:`int_param`: request and response bodies;
- :func:`look_up`: a record named by the path, or the API's 404;
- :func:`same_secret`: a credential compared in constant time;
- :func:`sandbox_route`: a sandbox control (``POST /_sandbox/...``) among a stand-in's routes.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.jsonio import dumps, loads

SANDBOX_PREFIX = "/_sandbox/"
BODIES_KEPT = 1000
"""Request bodies a stand-in keeps (:attr:`Standin.bodies`): the last ones, so memory stays flat."""
"""Paths under this prefix are the sandbox's controls (e.g. ``POST /_sandbox/orders`` creates a
marketplace order), exempt from the rate limit and faults; no real API has them."""


def sandbox_route(path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> Route:
    """A control of the sandbox, ``POST /_sandbox/<path>`` (e.g. a buyer's order): no real API has
    it, so it needs no credentials and the base serves it without rate limit or faults."""
    return Route(SANDBOX_PREFIX + path, endpoint, methods=["POST"])


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
        self.bodies: deque[tuple[str, bytes]] = deque(maxlen=BODIES_KEPT)
        """The last requests of the API, as ("METHOD /path", body), oldest first: what was sent,
        for tests that check a call carried only what changed."""
        self.throttled = 0
        self.app: Starlette = self.build()

    # -- to be provided by each stand-in ----------------------------------------------------

    def build(self) -> Starlette:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        """The API's own error shape."""
        return {"error": message, "status": status}

    def sandbox_credentials(self) -> dict[str, str]:
        """Credential name -> the well-known value `tradepost sandbox` writes to its project: by
        default the OAuth client's (:meth:`AccessTokens.credentials`), for a stand-in whose token
        endpoint is an :class:`AccessTokens` named ``oauth``; none otherwise."""
        oauth = getattr(self, "oauth", None)
        return oauth.credentials() if isinstance(oauth, AccessTokens) else {}

    @classmethod
    def for_sandbox(
        cls, catalog: Iterable[Mapping[str, Any]], *, faults: Faults | None, rate_limit: float | None
    ) -> Standin:
        """The stand-in `tradepost sandbox` serves: by default its well-known credentials, the
        sandbox's faults and rate limit; a stand-in that serves the catalog overrides it."""
        return cls(rate_limit=rate_limit, faults=faults)

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
        call = f"{scope['method']} {scope['path']}"
        self.requests[call] += 1
        receive = self._kept(call, receive)
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

    def _kept(self, call: str, receive: Receive) -> Receive:
        """``receive``, keeping the request's body in :attr:`bodies` once it is read whole."""
        chunks: list[bytes] = []

        async def keeping() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self.bodies.append((call, b"".join(chunks)))
            return message

        return keeping

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


# -- pieces the stand-ins compose -----------------------------------------------------------------

T = TypeVar("T")


def same_secret(given: str | None, expected: str) -> bool:
    """A credential as given against the one expected, in constant time; None never matches."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class AccessTokens:
    """An OAuth token endpoint's refresh-token grant, and the access tokens it has issued.

    The stand-in answers in its own shape: :meth:`refusal` says which OAuth error a grant
    earns, :meth:`issue` records a new access token, :meth:`live` checks one. ``clock`` is
    when tokens expire (``time.monotonic`` unless the stand-in lets tests move time).
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        lifetime: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_token = refresh_token
        """The refresh token accepted now (a stand-in whose tokens rotate replaces it)."""
        self.lifetime, self.clock = lifetime, clock
        self.issued: dict[str, float] = {}
        """Access token -> when it expires, on ``clock``."""

    def credentials(self) -> dict[str, str]:
        """The client id and secret and the refresh token accepted now, under the names the OAuth
        connectors declare (``client_id``, ``client_secret``, ``refresh_token``)."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }

    def refusal(self, form: Mapping[str, str]) -> str | None:
        """None for a valid refresh-token grant, else its OAuth error: ``unsupported_grant_type``,
        ``invalid_client`` (the client id or secret) or ``invalid_grant`` (the refresh token)."""
        if form.get("grant_type") != "refresh_token":
            return "unsupported_grant_type"
        if not (
            same_secret(form.get("client_id"), self.client_id)
            and same_secret(form.get("client_secret"), self.client_secret)
        ):
            return "invalid_client"
        if not same_secret(form.get("refresh_token"), self.refresh_token):
            return "invalid_grant"
        return None

    def issue(self, access_token: str) -> str:
        """Record a new access token, live for ``lifetime`` seconds from now."""
        self.issued[access_token] = self.clock() + self.lifetime
        return access_token

    def expiry(self, access_token: str | None) -> float | None:
        """When an issued token expires; None for one never issued (or revoked)."""
        return self.issued.get(access_token or "")

    def live(self, access_token: str | None) -> bool:
        expires = self.expiry(access_token)
        return expires is not None and self.clock() < expires

    def bearer(self, request: Request) -> bool:
        """Whether the request's ``Authorization: Bearer`` token is live."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.live(token)

    def revoke(self) -> None:
        """What re-authorising the app does: every access token stops working."""
        self.issued.clear()


class Refusal(Exception):
    """An answer in the API's error shape, raised from anywhere in a handler (see
    :func:`error_handlers`); each stand-in's subclass says what its body is."""

    status: int

    def body(self) -> Any:
        raise NotImplementedError


@dataclass
class Refused(Refusal):
    """A refusal whose body the stand-in has already shaped (``Standin.error_body`` and the like)."""

    status: int
    shaped: Any

    def body(self) -> Any:
        return self.shaped


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def error_handlers(
    error_body: Callable[[int, str], Any], unrouted: Callable[[Request, int, Exception], str]
) -> dict[Any, ExceptionHandler]:
    """The app's answers to a raised :class:`Refusal` (its body) and to starlette's HTTP errors (an
    unknown route or method: ``error_body`` with what ``unrouted`` says), in the API's shape."""

    async def http_error(request: Request, error: Exception) -> Response:
        status = error.status_code if isinstance(error, HTTPException) else 500
        return exact_json(error_body(status, unrouted(request, status, error)), status)

    return {Refusal: answer_refusal, HTTPException: http_error}


async def answer_refusal(request: Request, error: Exception) -> Response:
    """The answer to a raised :class:`Refusal`: its body, its status (an app's exception handler)."""
    assert isinstance(error, Refusal)
    return exact_json(error.body(), error.status)


def look_up(table: Mapping[str, T], key: str, missing: Callable[[str], Exception]) -> T:
    """The record ``key`` names, or ``missing(key)`` raised (the API's 404)."""
    found = table.get(key)
    if found is None:
        raise missing(key)
    return found


async def form_body(request: Request) -> dict[str, str]:
    """A form-encoded body (an OAuth grant): each field's first value."""
    return {key: values[0] for key, values in parse_qs((await request.body()).decode("utf-8")).items()}


async def json_body(request: Request) -> Any:
    """The JSON body, numbers exact (``engine.jsonio``); ValueError when it is not JSON (or empty)."""
    return loads(await request.body())


async def json_object(request: Request, not_json: Exception, not_object: Exception) -> dict[str, Any]:
    """The JSON object the request sends; ``not_json`` or ``not_object`` raised when it is not one."""
    try:
        body = await json_body(request)
    except ValueError:
        raise not_json from None
    if not isinstance(body, dict):
        raise not_object
    return body


async def json_or_none(request: Request) -> Any:
    """The JSON body, or None when it is absent or not JSON (handlers answer 400 for what they need)."""
    try:
        return await json_body(request)
    except ValueError:
        return None
