"""Netshoes marketplace API v1 basics shared by the catalog connector and the order channel.

What every Netshoes call needs, whatever it sends (``shared/specs/netshoes/API.md`` §1-2):

- authentication: two headers on every call, ``client_id`` and ``access_token``, both issued by
  Netshoes (no OAuth flow, nothing to refresh): :func:`auth_headers`;
- the error body ``{"type", "description", "notifications", "links"}``: :func:`error_text` makes
  one line of it (the label API's ``{"errors": [{"code", "description"}]}`` too);
  ``Business_Logic_Error`` is how Netshoes refuses a price or stock for a SKU it has not approved
  (:func:`not_approved`);
- the per-minute call plans (50, 100 or 250 calls a minute, 429 beyond): :func:`calls_per_second`
  turns the plan the options name into the rate every request is paced at;
- :class:`Caller`: one request through the run's ``httpx.AsyncClient`` (the executor paces it),
  retried on 429, 5xx and lost connections, answering any other status for the caller to read.

The guarantee: nothing here knows the catalog or orders; both sides build on it unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine.connectors import OrderCallError, RetryPolicy, json_body
from engine.jsonio import dumps

PLANS = {"initial": 50, "small": 100, "medium": 250}
"""Calls a minute per seller plan (API.md §2, the portal's "Produção" page); ``initial`` is the one a
seller has after integration, until Netshoes assigns another."""
NOT_APPROVED = "Business_Logic_Error"
"""The error ``type`` of a price or stock sent for a SKU Netshoes has not approved (API.md §8.2)."""
WHO = "Netshoes"
API = "/api/v1"
"""Every path's prefix (the base URL is the host: ``https://api-{sandbox|prod}.netshoes.com.br``)."""


def auth_headers(client_id: str, access_token: str) -> dict[str, str]:
    """The app's two headers (API.md §1), and JSON both ways."""
    return {
        "client_id": client_id,
        "access_token": access_token,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }


def calls_per_second(calls_per_minute: str, time_scale: float = 1.0) -> float:
    """The pace of a plan: ``calls_per_minute`` a number or a plan's name; ``time_scale`` speeds the
    minute up (the sandbox's minute lasts 0.1 s)."""
    per_minute = PLANS.get(calls_per_minute.strip().lower()) or float(calls_per_minute)
    return per_minute / 60.0 * time_scale


def retry_policy(options: Mapping[str, Any]) -> RetryPolicy:
    """How the connector and the order channel retry: options ``max_attempts`` (8, as the executor
    tries a change: a SKU's first load makes five calls, each of which must land) and
    ``retry_seconds`` (0.5, doubling up to 30 s)."""
    attempts = max(1, int(options.get("max_attempts") or 8))
    return RetryPolicy(attempts=attempts, base=float(options.get("retry_seconds") or 0.5), cap=30.0)


def error_text(response: httpx.Response) -> str:
    """The status, the error ``type`` and its description and notifications, on one line."""
    body = json_body(response)
    parts: list[str] = []
    if isinstance(body, Mapping):
        if body.get("type"):
            parts.append(str(body["type"]))
        if body.get("description"):
            parts.append(str(body["description"]))
        parts.extend(str(note) for note in body.get("notifications") or [] if note)
        parts.extend(
            str(error.get("description")) for error in body.get("errors") or [] if isinstance(error, Mapping)
        )
    text = "; ".join(parts) or response.text.strip()[:300] or response.reason_phrase
    return f"{response.status_code} {text}"


def not_approved(response: httpx.Response) -> bool:
    """Whether a refusal is Netshoes discarding a price or stock for a SKU it has not approved."""
    body = json_body(response)
    return (
        400 <= response.status_code < 500 and isinstance(body, Mapping) and body.get("type") == NOT_APPROVED
    )


def passes_through(response: httpx.Response) -> bool:
    """Every answer but throttling and server errors is the caller's to read (a 404 is news)."""
    return response.status_code != 429 and response.status_code < 500


@dataclass
class Caller:
    """The connector's own requests in one apply: authenticated, retried, counted."""

    client: httpx.AsyncClient
    headers: Mapping[str, str]
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=5, base=0.5, cap=30.0))
    count: int = 0
    retries: int = 0
    throttled: int = 0

    async def call(self, method: str, path: str, body: Any = None, params: Any = None) -> httpx.Response:
        """The answer (2xx or 4xx), tried again on 429 (after its Retry-After), 5xx and lost
        connections; when every try met one, a retryable :class:`~engine.connectors.OrderCallError`
        (or the transport error). Bodies are written with exact decimals."""
        content = None if body is None else dumps(body).encode("utf-8")

        async def attempt(n: int) -> httpx.Response:
            self.count += 1
            self.retries += n > 0
            answer = await self.client.request(
                method, API + path, headers=self.headers, content=content, params=params
            )
            self.throttled += answer.status_code == 429
            return answer

        answer = await self.retry.run_async(attempt)
        if not passes_through(answer):
            raise OrderCallError(f"{WHO} answered {method} {path} with {error_text(answer)}", retryable=True)
        return answer


def json_of(response: httpx.Response) -> dict[str, Any]:
    """A 2xx answer's JSON object; a retryable :class:`OrderCallError` when it is not one (a garbled
    answer: the same read may pass later)."""
    body = json_body(response)
    if not isinstance(body, dict):
        raise OrderCallError(
            f"{WHO} answered {response.request.url.path} with no JSON object", retryable=True
        )
    return body


__all__ = [
    "API",
    "NOT_APPROVED",
    "PLANS",
    "WHO",
    "Caller",
    "auth_headers",
    "calls_per_second",
    "error_text",
    "json_of",
    "not_approved",
    "passes_through",
    "retry_policy",
]
