"""Reading back what a marketplace holds: the data a connector yields and the reads it makes.

``tradepost state rebuild`` (``engine._rebuild``) asks a connector's
:meth:`~marketplaces._base.Connector.read_back` for every listing of the seller. The connector
yields :class:`RemoteListing` values and makes its requests through a :class:`Reader`, which
authenticates, paces them at the marketplace's rate, retries what may pass (429, 5xx, a lost
connection, a refused token) and counts them; anything else is a :class:`ReadBackError`, so a
rebuild either reads the whole marketplace or writes nothing. :func:`differing` compares what a
connector would send with what it read, ignoring what the marketplace adds on its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from engine._diagnostics import TradepostError
from engine._jsonio import loads
from marketplaces._base import _error_text, retry_after

if TYPE_CHECKING:
    from marketplaces._base import Connector, Credentials


@dataclass(frozen=True)
class RemoteListing:
    """One SKU as the marketplace holds it, read back by :meth:`Connector.read_back`.

    ``content`` is the marketplace's content in the connector's own comparable form (the same
    form :meth:`Connector.remote_differences` builds from a listing), so that a rebuilt state
    row can say whether the content is the one the rules would send. ``quantity`` is None where
    the marketplace shows only in or out of stock (Google).
    """

    sku_id: str
    remote_id: str | None
    """As the connector records it after an apply (None where the marketplace keys by SKU)."""
    price: Decimal | None
    sale_price: Decimal | None = None
    quantity: int | None = None
    content: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None
    """The marketplace's family key (a Mercado Libre item holding variations), or None."""
    live: bool = True
    """False for a listing withdrawn the way the connector withdraws one (a paused item)."""
    idle: bool = False
    """Live, but as a withdrawal leaves it (a Mercado Libre variation with no stock): withdrawn
    when the rules do not list the SKU, a listing like any other when they do."""


class ReadBackError(TradepostError):
    """The marketplace refused a read, or could not be reached, while listings were read back."""


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


def differing(sent: Mapping[str, Any], read: Mapping[str, Any]) -> list[str]:
    """Keys of ``sent`` whose value ``read`` does not hold. Mappings compare key by key the same
    way, so what the marketplace adds (its own attributes, ids, defaults) is ignored; lists and
    scalars compare whole."""
    found = []
    for key, value in sent.items():
        other = read.get(key)
        if isinstance(value, Mapping) and isinstance(other, Mapping):
            if differing(value, other):
                found.append(key)
        elif comparable(value) != comparable(other):
            found.append(key)
    return found


def comparable(value: Any) -> Any:
    """JSON-like data with every number as a normalised Decimal string and mappings sorted, so
    that what was sent and what the marketplace answers compare equal when they mean the same."""
    return json.loads(json.dumps(_normalised(value), sort_keys=True))


def _normalised(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, Mapping):
        return {str(k): _normalised(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalised(v) for v in value]
    return str(value)
