"""How the Amazon connector talks to SP-API: its own requests, and what Listings answers mean.

The connector class declares what to send; this module holds the HTTP mechanics it needs on its
own, outside the executor's per-call loop (its Login with Amazon token is a
:class:`~engine.connectors.RefreshedToken`, its feeds go through ``_feeds``): the
:class:`Sender` of its own requests, and Amazon's two answer shapes (a
``ListingsItemSubmissionResponse`` and an ``ErrorList``). Those requests are retried (throttling
and server errors, honouring ``Retry-After``) under :attr:`Pacing.retry`, because the executor
only retries the calls it sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from engine.connectors import CallResult, RetryPolicy
from engine.jsonio import dumps, loads

LISTINGS_ITEMS = "/listings/2021-08-01/items"


@dataclass(frozen=True)
class Pacing:
    """How patient the connector's own request loops are (rule-file options, tests shorten them)."""

    attempts: int = 5
    retry_seconds: float = 1.0
    """First back-off after a 5xx or a dropped connection; doubles each attempt (429 uses Retry-After)."""
    poll_seconds: float = 30.0
    feed_timeout_seconds: float = 4 * 3600.0

    @property
    def retry(self) -> RetryPolicy:
        """How the connector's own requests (and the LWA token's) are retried: ``attempts`` tries,
        ``retry_seconds`` doubling up to a minute, or as long as Retry-After asks (at most a minute)."""
        return RetryPolicy(
            attempts=self.attempts, base=self.retry_seconds, cap=60.0, jitter=(1.0, 1.0), retry_after_cap=60.0
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Pacing:
        default = cls()
        return cls(
            attempts=max(1, int(options.get("max_attempts", default.attempts))),
            retry_seconds=float(options.get("retry_seconds", default.retry_seconds)),
            poll_seconds=float(options.get("feed_poll_seconds", default.poll_seconds)),
            feed_timeout_seconds=float(options.get("feed_timeout_seconds", default.feed_timeout_seconds)),
        )


def seller_path(seller_id: str) -> str:
    """The seller's Listings Items path: ``searchListingsItems``, and each item's under it."""
    return f"{LISTINGS_ITEMS}/{quote(seller_id, safe='')}"


def item_path(seller_id: str, sku: str) -> str:
    """The Listings Items path; the SKU is percent-encoded whole, '/' included, as Amazon requires."""
    return f"{seller_path(seller_id)}/{quote(sku, safe='')}"


def json_body(body: Any) -> bytes:
    """Exact JSON: prices are ``Decimal`` and must reach Amazon digit for digit."""
    return dumps(body).encode("utf-8")


@dataclass
class Sender:
    """The connector's own requests (feeds, confirmations): retried, paced and counted.

    Retries 429 after its Retry-After, and 5xx and dropped connections after a doubling pause
    (:meth:`Pacing.retry`); ``count`` is every request made, retries included, for the executor's
    summary.
    """

    client: httpx.AsyncClient
    pacing: Pacing
    count: int = 0

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """The last answer; the transport error itself when even the last attempt got none."""

        async def attempt(n: int) -> httpx.Response:
            self.count += 1
            return await self.client.request(method, url, headers=headers, params=params, content=content)

        return await self.pacing.retry.run_async(attempt)


def token_expired(response: httpx.Response) -> bool:
    """Amazon's 403 for an access token that expired in flight: refresh and send again."""
    return response.status_code == 403 and "expired" in error_text(response).lower()


# -- answers -------------------------------------------------------------------------------------


def _json(response: httpx.Response) -> Any:
    try:
        return loads(response.content)
    except ValueError:
        return None


def error_text(response: httpx.Response) -> str:
    """Amazon's ``errors[].message`` (and details), else the body's first characters."""
    body = _json(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        parts = []
        for error in errors:
            if isinstance(error, dict):
                text = f"{error.get('code', 'Error')}: {error.get('message', '')}"
                parts.append(f"{text} ({error['details']})" if error.get("details") else text)
        if parts:
            return "; ".join(parts)
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase


def issue_errors(issues: Iterable[Any]) -> list[str]:
    """The ERROR issues as readable lines; warnings and infos do not stop a listing."""
    lines = []
    for issue in issues:
        if isinstance(issue, dict) and issue.get("severity") == "ERROR":
            # Listings answers say attributeNames, feed processing reports attributeName.
            names = issue.get("attributeNames") or [issue.get("attributeName")]
            names = [str(name) for name in names if name]
            where = f" [{', '.join(names)}]" if names else ""
            lines.append(f"{issue.get('code', 'ERROR')}: {issue.get('message', '')}{where}")
    return lines


def failure(response: httpx.Response) -> CallResult:
    """A non-2xx answer: throttling and server errors are worth another try, the rest is ours to fix."""
    status = response.status_code
    retryable = status == 429 or status >= 500 or token_expired(response)
    return CallResult(False, retryable=retryable, error=f"{status}: {error_text(response)}")


def submission_result(response: httpx.Response, expects_processing: bool) -> CallResult:
    """A ``ListingsItemSubmissionResponse``: INVALID or ERROR issues fail, ACCEPTED waits to be confirmed."""
    if not 200 <= response.status_code < 300:
        return failure(response)
    body = _json(response)
    if not isinstance(body, dict):
        return CallResult(True)
    errors = issue_errors(body.get("issues") or [])
    if body.get("status") == "INVALID" or errors:
        return CallResult(False, error="; ".join(errors) or "Amazon answered INVALID without issues")
    submission = body.get("submissionId")
    return CallResult(True, pending=str(submission) if expects_processing and submission else None)


def _not_listed(submission: str) -> CallResult:
    return CallResult(
        False,
        retryable=True,
        error=f"not on Amazon although submission {submission} was accepted; it will be sent again",
    )


def searched_outcomes(response: httpx.Response, pending: Mapping[str, str]) -> dict[str, CallResult]:
    """A ``searchListingsItems`` answer (``identifiers``: these SKUs) read for the outcome of each
    accepted submission, as :func:`listing_outcome` reads one ``getListingsItem`` answer: a SKU the
    search does not find was not listed, an ERROR issue refuses it; an answer that is not a
    search result fails them all (retryable as the status says)."""
    body = _json(response) if response.status_code == 200 else None
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        failed = (
            failure(response)
            if response.status_code != 200
            else CallResult(False, retryable=True, error="Amazon's search answer holds no items list")
        )
        return dict.fromkeys(pending, failed)
    found = {str(item["sku"]): item for item in items if isinstance(item, dict) and item.get("sku")}
    outcomes = {}
    for sku, submission in pending.items():
        item = found.get(sku)
        if item is None:
            outcomes[sku] = _not_listed(submission)
            continue
        errors = issue_errors(item.get("issues") or [])
        outcomes[sku] = CallResult(False, error="; ".join(errors)) if errors else CallResult(True)
    return outcomes


def listing_outcome(response: httpx.Response, pending: str) -> CallResult:
    """A ``getListingsItem`` answer read for the outcome of an accepted submission."""
    if response.status_code == 404:
        return _not_listed(pending)
    if response.status_code != 200:
        return failure(response)
    body = _json(response)
    errors = issue_errors(body.get("issues") or []) if isinstance(body, dict) else []
    if errors:
        return CallResult(False, error="; ".join(errors))
    return CallResult(True)
