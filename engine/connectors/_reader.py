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
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from engine.connectors._contract import _error_text, retry_after
from engine.connectors._readback import ReadBackError
from engine.jsonio import loads

if TYPE_CHECKING:
    from engine.connectors._contract import Connector, Credentials


class Reader:
    """GET requests for :meth:`Connector.read_back`: authenticated, paced, retried, counted.

    A read changes nothing, so every failure that may pass (429, 5xx, a lost connection, a
    refused token) is retried with backoff, up to ``max_attempts``; anything else raises
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
        self.max_attempts = max_attempts
        self.base_delay = base_delay
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
        error = ""
        for attempt in range(self.max_attempts):
            headers = await self.headers()
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                await self.sleep(wait)
            self._last = time.monotonic()
            self.requests += 1
            try:
                response = await self.client.get(path, params=dict(params or {}), headers=headers)
            except httpx.HTTPError as exc:
                error, delay = f"{type(exc).__name__}: {exc}", None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return loads(response.content)
                    except ValueError:
                        raise ReadBackError(f"GET {path}: the answer is not JSON") from None
                error, delay = f"{status}: {_error_text(response)}", retry_after(response, cap=60.0)
                if status == 401 or (status == 403 and attempt == 0):
                    # A token revoked or expired early (Amazon says so with a 403): fetch another.
                    self.connector.forget_token()
                elif status != 429 and status < 500:
                    raise ReadBackError(f"GET {path} was refused: {error}")
            if attempt + 1 < self.max_attempts:
                await self.sleep(max(delay or 0.0, self.base_delay * 2**attempt))
        raise ReadBackError(f"GET {path} failed {self.max_attempts} times: {error}")
