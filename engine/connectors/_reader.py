"""The reads a connector makes to list what a marketplace holds (``tradepost state rebuild``).

:class:`Reader` is handed to :meth:`~engine.connectors.Connector.read_back` by
:meth:`~engine.connectors.Connector.open_reader`: it authenticates with the connector's own
hooks, paces requests at the marketplace's rate, retries what may pass (429, 5xx, a lost
connection, a refused token) and counts them; anything else is an
:class:`~engine.connectors._readback.ReadBackError`, so a rebuild either reads the whole marketplace or
writes nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from engine.connectors._contract import _error_text
from engine.connectors._readback import ReadBackError
from engine.connectors._retry import RetryPolicy
from engine.jsonio import loads

if TYPE_CHECKING:
    from engine.connectors._contract import Connector, Credentials


class Reader:
    """GET requests for :meth:`Connector.read_back`: authenticated, paced, retried, counted.

    A read changes nothing, so every failure that may pass (429, 5xx, a lost connection, a
    refused token) is retried under :attr:`policy` (``max_attempts`` tries, a backoff doubling
    from ``base_delay``, Retry-After honoured up to a minute); anything else raises
    :class:`ReadBackError` naming the request, so a rebuild never records half a marketplace.
    """

    def __init__(
        self,
        connector: Connector,
        client: httpx.AsyncClient,
        credentials: Credentials,
        *,
        rate: float | None = None,
        max_attempts: int = 6,
        base_delay: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.connector = connector
        self.client = client
        self.credentials = credentials
        self.interval = 1.0 / (rate or connector.rate_limit)
        self.policy = RetryPolicy(
            attempts=max_attempts,
            base=base_delay,
            cap=math.inf,
            jitter=(1.0, 1.0),
            retry_after_mode="floor",
            retry_after_cap=60.0,
            exceptions=(httpx.HTTPError,),
        )
        self.sleep = sleep
        self.requests = 0
        self.unnamed = 0
        """Listings the connector left out because they name no SKU (not Tradepost's to manage)."""
        self.unreached = 0
        """Listings the marketplace counts but no request can reach (Amazon's 1,000-per-search cap)."""
        self._last = 0.0

    async def headers(self) -> dict[str, str]:
        return await self.connector.auth_headers(self.client, self.credentials)

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """The JSON answer of ``GET path``; :class:`ReadBackError` when it cannot be had."""

        async def attempt(n: int) -> httpx.Response:
            headers = await self.headers()
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                await self.sleep(wait)
            self._last = time.monotonic()
            self.requests += 1
            response = await self.client.get(path, params=dict(params or {}), headers=headers)
            status = response.status_code
            if self.connector.drop_refused_token(response):
                pass  # a token revoked or expired early: the next attempt fetches another
            elif not 200 <= status < 300 and not self.connector.may_pass_later(response):
                raise ReadBackError(f"GET {path} was refused: {status}: {_error_text(response)}")
            return response

        attempts = self.policy.attempts
        try:
            response = await self.policy.run_async(
                attempt, retry_if=lambda answer: not 200 <= answer.status_code < 300, sleep=self.sleep
            )
        except httpx.HTTPError as exc:
            raise ReadBackError(f"GET {path} failed {attempts} times: {type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            error = f"{response.status_code}: {_error_text(response)}"
            raise ReadBackError(f"GET {path} failed {attempts} times: {error}")
        try:
            return loads(response.content)
        except ValueError:
            raise ReadBackError(f"GET {path}: the answer is not JSON") from None
