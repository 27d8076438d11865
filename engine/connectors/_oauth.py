"""OAuth 2 access tokens from a refresh token, shared by the connectors that use them.

Mercado Libre, Google and Amazon (Login with Amazon) trade a refresh token for a short-lived
access token at a token endpoint; Mercado Libre also rotates the refresh token, which is kept
here so the executor can persist it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine._diagnostics import TradepostError
from engine.connectors._contract import Credentials
from engine.connectors._retry import RetryPolicy
from engine.jsonio import loads
from engine.secrets._redact import forget as forget_secret
from engine.secrets._redact import register


class TokenError(TradepostError):
    """The token endpoint refused the credentials, or kept failing; the message never repeats them.

    ``retryable``: the endpoint did not answer or kept answering 429/5xx, so a later run may
    succeed; false when it refused the credentials themselves.
    """

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


TOKEN_ENDPOINT_RETRY = RetryPolicy(
    attempts=4, base=1.0, cap=math.inf, jitter=(1.0, 1.0), retry_after_cap=60.0
)
"""A token endpoint's throttling and server errors: 4 tries, 1, 2, 4 s apart, or as Retry-After asks."""


@dataclass
class RefreshedToken:
    """An access token obtained from a refresh token, kept until ``margin`` seconds before it expires.

    Refreshes happen one at a time, so a burst of requests at expiry costs one token request.
    The executor retries only the calls it sends, so throttling and server errors of the token
    endpoint are retried here, under ``retry``. (Mercado Libre rotates refresh tokens; Google and
    Login with Amazon do not.) Every token obtained is registered with the secrets redactor.
    """

    url: str
    """Absolute, or relative to the client's base URL."""
    who: str
    margin: float = 60.0
    retry: RetryPolicy = TOKEN_ENDPOINT_RETRY
    client_credentials: tuple[str, str] = ("client_id", "client_secret")
    """The names of the credentials sent as ``client_id`` and ``client_secret``."""
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    access_token: str | None = None
    expires_at: float = 0.0
    refresh_token: str | None = None
    _issued_for: str | None = field(default=None, repr=False)
    _locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = field(default_factory=dict, repr=False)

    async def headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(client, credentials)}"}

    async def token(self, client: httpx.AsyncClient, credentials: Credentials) -> str:
        """The access token, refreshed first when due (or when the credentials hold another refresh token)."""
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            given = credentials.values.get("refresh_token")
            if given not in (self._issued_for, self.refresh_token):
                self.access_token, self.refresh_token = None, None  # other credentials: start over
            if self.access_token is None or self.clock() >= self.expires_at - self.margin:
                await self._refresh(client, credentials)
            assert self.access_token is not None
            return self.access_token

    def forget(self) -> None:
        """Drop the access token (the API refused it): the next request refreshes."""
        self.access_token = None

    async def _refresh(self, client: httpx.AsyncClient, credentials: Credentials) -> None:
        client_id, client_secret = self.client_credentials
        form = {
            "grant_type": "refresh_token",
            "client_id": credentials.get(client_id),
            "client_secret": credentials.get(client_secret),
            "refresh_token": self.refresh_token or credentials.get("refresh_token"),
        }
        started: list[float] = []

        async def attempt(n: int) -> httpx.Response:
            started[:] = [self.clock()]
            return await client.post(self.url, data=form, headers={"Accept": "application/json"})

        try:
            response = await self.retry.run_async(attempt, sleep=self.sleep)
        except httpx.TransportError as exc:
            raise TokenError(
                f"{self.who}: the token endpoint did not answer ({exc})", retryable=True
            ) from None
        status, body = response.status_code, json_body(response)
        if status == 200 and isinstance(body, dict) and body.get("access_token"):
            self._keep(body, started[0])
            self._issued_for = credentials.values.get("refresh_token")
            return
        raise TokenError(
            f"{self.who} refused to refresh the access token ({status}: "
            f"{_token_error(body) or response.reason_phrase}); check the {client_id}, {client_secret} "
            "and refresh_token credentials",
            retryable=self.retry.retryable(response),
        )

    def _keep(self, body: dict[str, Any], started: float) -> None:
        """Tokens are secrets too (an error body may echo one); replaced ones are dropped, so a
        long-running process does not mask an ever-growing list."""
        for old in (self.access_token, self.refresh_token if body.get("refresh_token") else None):
            if old is not None:
                forget_secret(old)
        self.access_token = str(body["access_token"])
        register(self.access_token)
        self.expires_at = started + float(body.get("expires_in") or 0)
        if body.get("refresh_token"):
            self.refresh_token = str(body["refresh_token"])
            register(self.refresh_token)


def _token_error(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = [body.get("error"), body.get("error_description") or body.get("message")]
    return ": ".join(dict.fromkeys(str(p) for p in parts if p and not isinstance(p, dict)))


def json_body(response: httpx.Response) -> Any:
    """The answer's JSON (numbers as Decimal), or None when it has none or it is not JSON."""
    try:
        return loads(response.content) if response.content else None
    except ValueError:
        return None
