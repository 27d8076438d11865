"""OAuth 2 access tokens from a refresh token, shared by the connectors that use them.

Mercado Libre and Google both trade a refresh token for a short-lived access token at a
token endpoint; Mercado Libre also rotates the refresh token, which is kept here so the
executor can persist it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine._diagnostics import TradepostError
from engine.connectors._contract import Credentials, retry_after
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


@dataclass
class RefreshedToken:
    """An access token obtained from a refresh token, kept until ``margin`` seconds before it expires.

    Refreshes happen one at a time, so a burst of requests at expiry costs one token request.
    The executor retries only the calls it sends, so throttling and server errors of the token
    endpoint are retried here. (Mercado Libre rotates refresh tokens; Google does not.)
    """

    url: str
    """Absolute, or relative to the client's base URL."""
    who: str
    margin: float = 60.0
    attempts: int = 4
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    access_token: str | None = None
    expires_at: float = 0.0
    refresh_token: str | None = None
    _locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = field(default_factory=dict, repr=False)

    async def headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if self.access_token is None or self.clock() >= self.expires_at - self.margin:
                await self._refresh(client, credentials)
        return {"Authorization": f"Bearer {self.access_token}"}

    def forget(self) -> None:
        """Drop the access token (the API refused it): the next request refreshes."""
        self.access_token = None

    async def _refresh(self, client: httpx.AsyncClient, credentials: Credentials) -> None:
        form = {
            "grant_type": "refresh_token",
            "client_id": credentials.get("client_id"),
            "client_secret": credentials.get("client_secret"),
            "refresh_token": self.refresh_token or credentials.get("refresh_token"),
        }
        for attempt in range(self.attempts):
            started = self.clock()
            try:
                response = await client.post(self.url, data=form, headers={"Accept": "application/json"})
            except httpx.TransportError as exc:
                if attempt + 1 == self.attempts:
                    raise TokenError(
                        f"{self.who}: the token endpoint did not answer ({exc})", retryable=True
                    ) from None
                await self.sleep(2.0**attempt)
                continue
            status, body = response.status_code, json_body(response)
            if status == 200 and isinstance(body, dict) and body.get("access_token"):
                # Tokens are secrets too (an error body may echo one); replaced ones are dropped,
                # so a long-running process does not mask an ever-growing list.
                for old in (self.access_token, self.refresh_token if body.get("refresh_token") else None):
                    if old is not None:
                        forget_secret(old)
                self.access_token = str(body["access_token"])
                register(self.access_token)
                self.expires_at = started + float(body.get("expires_in") or 0)
                if body.get("refresh_token"):
                    self.refresh_token = str(body["refresh_token"])
                    register(self.refresh_token)
                return
            if (status == 429 or status >= 500) and attempt + 1 < self.attempts:
                await self.sleep(retry_after(response, cap=60.0) or 2.0**attempt)
                continue
            raise TokenError(
                f"{self.who} refused to refresh the access token ({status}: "
                f"{_token_error(body) or response.reason_phrase}); check the client_id, client_secret "
                "and refresh_token credentials",
                retryable=status == 429 or status >= 500,
            )


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
