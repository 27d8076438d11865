"""Magalu Open API basics shared by the catalog connector and the order channel.

What every call to the seller API (``https://api.magalu.com/seller/v1/...``) needs, whatever it
sends (``shared/specs/magalu/API.md`` sections 1 to 3):

- hosts: :data:`API_URL` (production), :data:`SANDBOX_API_URL`, and ID Magalu (:data:`ID_URL`),
  whose ``/oauth/token`` trades the seller's refresh token for a bearer access token (at most 2 h);
  :func:`magalu_token` builds that token (the refresh token may rotate: the newest one is kept for
  the executor to persist). Scopes (:data:`CATALOG_SCOPES`, :data:`ORDER_SCOPES`) are the current
  ``-seller`` names; they are configured on the client when it is created, not sent here;
- headers (:func:`api_headers`): JSON, ``X-Language: por`` as the product examples send, and
  ``X-Channel-Id`` (the sales channel's UUID) that order and delivery reads require; write calls
  carry the channel in their body instead (:func:`channel_ref`);
- money (:func:`cents`, :func:`from_cents`): integers in minor units with ``normalizer`` 100 and
  ``currency`` BRL (the invoice ``amount`` alone is a decimal);
- answers: every response carries ``X-Request-ID``, quoted in every error so Magalu's support can
  find the call. The error body is *unverified* (the portal page could not be read): read as
  ``{"error": code, "message": text}``, with ``code``/``errors[]`` variants tolerated
  (:func:`error_code`, :func:`error_message`). :func:`failure` maps an answer to an outcome: 429
  and 5xx may pass later, 401/403 are the token's or the scopes' fault (:class:`MagaluError` says
  which credential), any other 4xx the request's;
- :class:`MagaluSender`: one request through an ``httpx.AsyncClient`` (the executor's, already
  paced at the connector's rate), retried on 429, 5xx and lost connections, counted.

The guarantee: nothing here knows the catalog or orders; both sides build on it unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from engine import TradepostError
from engine.connectors import CallResult, RefreshedToken, RetryPolicy, json_body

API_URL = "https://api.magalu.com"
SANDBOX_API_URL = "https://api-sandbox.magalu.com"
ID_URL = "https://id.magalu.com"
TOKEN_PATH = "/oauth/token"
SANDBOX_CHANNEL_ID = "5f62650a-0039-4d65-9b96-266d498c03bd"
"""The channel Magalu's own sandbox uses (the deliveries sandbox page)."""

CATALOG_SCOPES = (
    "open:portfolio-skus-seller:read",
    "open:portfolio-skus-seller:write",
    "open:portfolio-prices-seller:read",
    "open:portfolio-prices-seller:write",
    "open:portfolio-stocks-seller:read",
    "open:portfolio-stocks-seller:write",
)
ORDER_SCOPES = (
    "open:order-order-seller:read",
    "open:order-delivery-seller:read",
    "open:order-delivery-seller:write",
    "open:order-invoice-seller:read",
    "open:order-logistics-seller:read",
    "open:order-logistics-seller:write",
)

CHANNEL_HEADER = "X-Channel-Id"
REQUEST_ID_HEADER = "X-Request-ID"
NORMALIZER = 100
CURRENCY = "BRL"


class MagaluError(TradepostError):
    """A Magalu call failed in a way the caller cannot read an outcome from."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def magalu_token(id_url: str = ID_URL) -> RefreshedToken:
    """The bearer token from ID Magalu's ``/oauth/token`` (``grant_type=refresh_token``, with the
    ``client_id``, ``client_secret`` and ``refresh_token`` credentials)."""
    return RefreshedToken(f"{id_url.rstrip('/')}{TOKEN_PATH}", "Magalu (ID Magalu)")


def api_headers(channel_id: str | None = None) -> dict[str, str]:
    """What every call sends besides the bearer; ``channel_id`` as ``X-Channel-Id`` when given."""
    headers = {"Accept": "application/json", "X-Language": "por"}
    if channel_id:
        headers[CHANNEL_HEADER] = channel_id
    return headers


def channel_ref(channel_id: str) -> dict[str, str]:
    """A write body's ``channel``: ``{"id": <uuid>}``."""
    return {"id": channel_id}


# -- money ---------------------------------------------------------------------------------------


def cents(amount: Decimal) -> int:
    """A price in minor units (``normalizer`` 100), rounded half up to the cent."""
    return int((amount * NORMALIZER).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_cents(value: Any, normalizer: Any = NORMALIZER) -> Decimal | None:
    """An integer amount in minor units back to a decimal; None when it is not a number."""
    try:
        return Decimal(str(value)) / Decimal(str(normalizer or NORMALIZER))
    except ArithmeticError:
        return None


# -- answers -------------------------------------------------------------------------------------


def request_id(response: httpx.Response) -> str:
    """The answer's ``X-Request-ID`` (empty when Magalu sent none)."""
    return str(response.headers.get(REQUEST_ID_HEADER, ""))


def error_code(response: httpx.Response) -> str:
    """The body's error code (``PRICE_ALREADY_EXISTS``, ``resource_not_found``...), or ``""``."""
    body = json_body(response)
    if not isinstance(body, dict):
        return ""
    code = body.get("error") or body.get("code")
    if not code and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0]
        code = first.get("code") if isinstance(first, dict) else None
    return str(code) if code and not isinstance(code, dict | list) else ""


def error_message(response: httpx.Response) -> str:
    """``code: message`` from the body (or its first characters), and the ``X-Request-ID``."""
    body = json_body(response)
    parts = [error_code(response)]
    if isinstance(body, dict):
        parts.append(str(body.get("message") or body.get("error_description") or ""))
        for item in body.get("errors") or []:
            if isinstance(item, dict) and item.get("message"):
                parts.append(str(item["message"]))
    text = ": ".join(dict.fromkeys(p for p in parts if p))
    if not text:
        text = response.text.strip()[:300] or response.reason_phrase
    rid = request_id(response)
    return f"{text} (X-Request-ID {rid})" if rid else text


def may_pass_later(status: int) -> bool:
    """Throttling and server errors: the same call may pass later."""
    return status == 429 or status >= 500


def failure(response: httpx.Response, what: str = "") -> CallResult:
    """A non-2xx answer as an outcome: retryable for 429 and 5xx (and 401: the token is refreshed),
    else the request's fault; 401/403 name the credentials and scopes to check."""
    status = response.status_code
    prefix = f"{what}: " if what else ""
    reason = error_message(response)
    if status == 401:
        reason = f"the access token was refused ({reason})"
    elif status == 403:
        reason = (
            f"forbidden ({reason}); check that the ID Magalu client has the -seller scopes "
            "and that the token's tenant is the store's company"
        )
    retryable = may_pass_later(status) or status == 401
    return CallResult(False, retryable=retryable, error=f"{prefix}{status} {reason}")


def raise_for_answer(response: httpx.Response, what: str) -> Any:
    """The JSON of a 2xx answer; a :class:`MagaluError` (retryable as :func:`failure` says) otherwise."""
    if 200 <= response.status_code < 300:
        return json_body(response)
    failed = failure(response, what)
    raise MagaluError(failed.error or what, failed.retryable)


def results(body: Any) -> list[dict[str, Any]]:
    """The ``results[]`` of a list answer (``{"meta": ..., "results": [...]}``)."""
    found = body.get("results") if isinstance(body, dict) else None
    return [item for item in found or [] if isinstance(item, dict)]


# -- sending -------------------------------------------------------------------------------------


@dataclass
class MagaluSender:
    """The client's own requests: authenticated, retried, counted.

    ``headers`` are the bearer (from the connector's ``auth_headers``) and :func:`api_headers`;
    the client is the executor's (paced at the connector's rate) or the order channel's.
    """

    client: httpx.AsyncClient
    headers: Mapping[str, str]
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=5, base=0.2, cap=10.0))
    count: int = 0
    retries: int = 0
    throttled: int = 0

    async def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        channel_id: str | None = None,
    ) -> httpx.Response:
        """The last answer; the transport error itself when even the last attempt got none."""
        headers = {**self.headers, **api_headers(channel_id)}

        async def attempt(n: int) -> httpx.Response:
            self.count += 1
            self.retries += n > 0
            response = await self.client.request(
                method, path, params=dict(params or {}), headers=headers, json=json
            )
            self.throttled += response.status_code == 429
            return response

        return await self.retry.run_async(attempt)


__all__ = [
    "API_URL",
    "CATALOG_SCOPES",
    "CHANNEL_HEADER",
    "CURRENCY",
    "ID_URL",
    "NORMALIZER",
    "ORDER_SCOPES",
    "REQUEST_ID_HEADER",
    "SANDBOX_API_URL",
    "SANDBOX_CHANNEL_ID",
    "TOKEN_PATH",
    "MagaluError",
    "MagaluSender",
    "api_headers",
    "cents",
    "channel_ref",
    "error_code",
    "error_message",
    "failure",
    "from_cents",
    "magalu_token",
    "may_pass_later",
    "raise_for_answer",
    "request_id",
    "results",
]
