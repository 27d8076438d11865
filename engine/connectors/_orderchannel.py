"""How a marketplace's orders are read and fulfilled: the interface every order channel implements.

An order channel is the order-side twin of a :class:`~engine.connectors.Connector`:
it reads the marketplace's orders into canonical :class:`~engine.model._order.Order`
records, confirms shipments with VTEX's invoice and tracking, and cancels
orders with a reason. The engine's order state machine (``engine.orders._flow``)
drives channels; it never speaks a marketplace's dialect itself.

Every call a channel makes goes through :func:`send`, which retries what is
worth retrying (429, 5xx, timeouts, dropped connections; honouring
Retry-After) under the channel's :class:`~engine.connectors.RetryPolicy`, and
raises :class:`OrderCallError` for the rest, so each channel reads like a list
of requests and mappings rather than a retry loop.

Channels must make their side effects safe to repeat: the state machine
records an intent before each call and repeats the call after a crash, so a
shipment confirmed twice or an order cancelled twice must count as done (the
marketplace's "already shipped" / "already cancelled" answer is success).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from engine._diagnostics import TradepostError
from engine.connectors._contract import Connector, Credentials
from engine.connectors._retry import RetryPolicy
from engine.model._order import Order

__all__ = [
    "BadOrder",
    "Fulfilment",
    "Invoice",
    "OrderCallError",
    "OrderChannel",
    "Tracking",
    "send",
]


@dataclass(frozen=True)
class Invoice:
    """The fiscal invoice VTEX issued for a package (``packageAttachment.packages[]``)."""

    number: str
    value: Decimal
    """In the order's currency, as a decimal amount (VTEX sends cents; readers convert)."""
    issued_at: datetime
    key: str | None = None
    """The invoice access key (Brazil's 44-digit NF-e key), when there is one."""
    url: str | None = None
    xml: str | None = None
    """The authorised NF-e XML (VTEX's ``embeddedInvoice``), when the store sent it to VTEX."""


@dataclass(frozen=True)
class Tracking:
    """How the package travels: carrier, tracking number and, where known, a tracking page."""

    carrier: str
    number: str
    url: str | None = None


@dataclass(frozen=True)
class Fulfilment:
    """One shipped package as VTEX reports it, to be confirmed on the marketplace.

    ``items`` lists ``(sku_id, quantity)`` in the package; empty means the whole
    order (VTEX packages without item detail).
    """

    invoice: Invoice
    tracking: Tracking | None = None
    items: tuple[tuple[str, int], ...] = ()
    shipped_at: datetime | None = None


@dataclass(frozen=True)
class BadOrder:
    """An order the marketplace returned that cannot be read into the canonical model.

    Kept (never dropped silently) so ``tradepost orders pull`` reports it and
    exits non-zero; ``message`` names fields, not personal values.
    """

    marketplace: str
    order_id: str
    message: str


class OrderCallError(TradepostError):
    """A marketplace or VTEX refused an order call, or never answered.

    ``retryable`` is true for what a later run may fix on its own (429, 5xx, a
    timeout): the state machine keeps the step pending. A false one (a 4xx the
    request caused) needs a person and is recorded as the order's error.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.response = response
        """The refusal itself, for the connector's one rule on refused tokens."""


ORDER_CALLS = RetryPolicy()
"""How an order call is retried unless its channel says otherwise: 5 tries from 0.2 s, at most 10 s apart."""


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    who: str,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
    params: Mapping[str, Any] | None = None,
    backoff: RetryPolicy = ORDER_CALLS,
    ok: Callable[[httpx.Response], bool] | None = None,
) -> httpx.Response:
    """One request with retries for 429, 5xx, timeouts and dropped connections only.

    Returns the response when ``ok`` says so (default: 2xx). A 4xx is returned
    as an :class:`OrderCallError` at once: repeating a request the server
    refused as wrong gives the same answer. ``who`` names the service in
    messages ("Amazon", "VTEX"); the message carries the status and the
    server's error text, never the request body (it may hold an address).
    """
    accept = ok or (lambda response: 200 <= response.status_code < 300)
    policy = dataclasses.replace(backoff, exceptions=_LOST)

    async def attempt(n: int) -> httpx.Response:
        return await client.request(method, url, headers=headers, json=json, content=content, params=params)

    try:
        response = await policy.run_async(
            attempt, retry_if=lambda answer: not accept(answer) and policy.retryable(answer)
        )
    except _LOST as exc:
        last = f"{who} did not answer {method} {_path(url)} ({type(exc).__name__})"
        raise OrderCallError(f"{last}; gave up after {policy.attempts} attempts", retryable=True) from None
    if accept(response):
        return response
    status, text = response.status_code, _error_text(response)
    if policy.retryable(response):
        last = f"{who} answered {status} to {method} {_path(url)}: {text}"
        raise OrderCallError(f"{last}; gave up after {policy.attempts} attempts", retryable=True)
    raise OrderCallError(
        f"{who} refused {method} {_path(url)} ({status}): {text}",
        retryable=False,
        status=status,
        response=response,
    )


_LOST = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
"""What an order call retries besides 429 and 5xx: the request may not have arrived."""


def _path(url: str) -> str:
    return httpx.URL(url).path if "://" in url else url.split("?")[0]


def _error_text(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] if text else response.reason_phrase


class OrderChannel:
    """Base of every marketplace's order channel.

    Built per run with the marketplace's connector (for options and
    authentication), its credentials and an ``httpx.AsyncClient`` whose
    ``base_url`` is the marketplace API (or its stand-in). ``sku_of`` maps a
    marketplace listing id (Mercado Libre "MLB123" or "MLB123/987") to the VTEX
    SKU id from the state store, for orders whose lines carry no seller SKU.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""

    backoff: RetryPolicy = ORDER_CALLS
    """How :meth:`request` retries; a channel may match its connector's own patience."""

    def __init__(
        self,
        connector: Connector,
        credentials: Credentials,
        client: httpx.AsyncClient,
        sku_of: Callable[[str], str | None] | None = None,
        after_auth: Callable[[], None] | None = None,
    ) -> None:
        self.connector = connector
        self.credentials = credentials
        self.client = client
        self.sku_of = sku_of or (lambda remote_id: None)
        self.after_auth = after_auth

    async def headers(self) -> dict[str, str]:
        """Authentication headers, refreshing the token through the connector when needed.

        ``after_auth`` runs right after, so a refresh token the marketplace rotated (Mercado
        Libre) is saved before any order call: a run killed later must not leave the next one
        holding a token that was already used.
        """
        try:
            headers = await self.connector.auth_headers(self.client, self.credentials)
        except TradepostError as exc:  # a token endpoint down is retryable; refused credentials are not
            raise OrderCallError(str(exc), retryable=bool(getattr(exc, "retryable", False))) from None
        except httpx.TransportError as exc:
            raise OrderCallError(
                f"the token endpoint did not answer ({type(exc).__name__})", retryable=True
            ) from None
        if self.after_auth is not None:
            self.after_auth()
        return headers

    def orders(self, since: datetime | None) -> AsyncIterator[Order | BadOrder]:
        """Orders created or changed since ``since`` (all recent ones when None), oldest first."""
        raise NotImplementedError

    async def order(self, order_id: str) -> Order:
        """One order by the marketplace's id (raises OrderCallError, or BadOrder's message as one)."""
        raise NotImplementedError

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        ok: Callable[[httpx.Response], bool] | None = None,
    ) -> httpx.Response:
        """One authenticated call through :func:`send`.

        A marketplace may refuse an access token before its announced expiry (revoked,
        rotated elsewhere): when the connector's :meth:`~engine.connectors.Connector.drop_refused_token`
        says so, the token is dropped and the call sent once more with a fresh one.
        """
        for attempt in (1, 2):
            try:
                return await send(
                    self.client,
                    method,
                    path,
                    who=self.title or self.name,
                    headers={**await self.headers(), **(headers or {})},
                    json=json,
                    content=content,
                    params=params,
                    backoff=self.backoff,
                    ok=ok,
                )
            except OrderCallError as refused:
                if attempt == 2 or refused.response is None:
                    raise
                if not self.connector.drop_refused_token(refused.response):
                    raise
        raise AssertionError("unreachable")

    async def accept(self, order: Order) -> Order | None:
        """Tell the marketplace the seller takes an order the rules (or a reviewer) approved. Repeatable.

        Called before the order is placed in VTEX, at every push until it is: a marketplace that
        asks the seller to accept each order (Mirakl's OR21) withholds the address until then.
        Returns the order as the marketplace shows it once accepted (the engine stores it, so the
        address it now has places the order in the same run), or None when nothing changed. Most
        marketplaces ask nothing, and this does nothing.
        """
        return None

    def needs_tracking(self, order: Order) -> bool:
        """Whether a shipment can be confirmed only with a tracking number (the engine waits for one).

        True for most marketplaces; a channel where the marketplace ships or
        issues the label itself (Mercado Envios) answers False for those orders.
        """
        return True

    async def confirm_shipment(self, order: Order, fulfilment: Fulfilment) -> None:
        """Tell the marketplace the package shipped, with invoice and tracking. Repeatable."""
        raise NotImplementedError

    async def cancel(self, order: Order, reason: str) -> None:
        """Cancel the order on the marketplace before shipment, with the reason. Repeatable."""
        raise NotImplementedError
