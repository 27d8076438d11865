"""Amazon's Feeds API 2021-06-30: one client for every feed Tradepost sends.

The connector sends ``JSON_LISTINGS_FEED`` documents (listings in bulk) and the order channel an
XML ``POST_ORDER_ACKNOWLEDGEMENT_DATA`` (to cancel an order); both make the same five-request
round trip: create a feed document, upload to its presigned URL, create the feed, poll it until
it finishes, then download its processing report (gunzipped when Amazon compressed it).

:class:`FeedsClient` holds that round trip; the caller supplies how a request goes out, so each
keeps its own authentication, retries and error type: ``call`` sends an SP-API request that must
answer a JSON object, ``transfer`` a request to a presigned URL (which must never carry the
access token). The client raises :class:`FeedError` itself only for an answer missing a field it
needs, or a presigned transfer refused. :func:`run_listings_feed` and :func:`feed_outcomes` are
the connector's side: its :class:`Sender` for both kinds of request, and each SKU's outcome read
from the JSON processing report.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from engine import TradepostError, failpoints
from engine.connectors import CallResult
from engine.jsonio import loads
from marketplaces.amazon._http import Pacing, Sender, failure, issue_errors, json_body

FEEDS = "/feeds/2021-06-30"
FINISHED = ("DONE", "FATAL", "CANCELLED")
LISTINGS_FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
JSON_CONTENT_TYPE = "application/json"

SpApiCall = Callable[[str, str, Any], Awaitable[dict[str, Any]]]
"""``(method, path, JSON body or None)`` -> the answer's JSON object; raises when there is none."""
Transfer = Callable[[str, str, Mapping[str, str], bytes | None], Awaitable[httpx.Response]]
"""``(method, presigned URL, headers, content)`` -> the answer, retried as the caller retries."""


class FeedError(TradepostError):
    """A Feeds API step failed, so the feed never started or its outcome cannot be read."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Feed:
    """Where a submitted feed stands once polling stops: its report when it finished with one."""

    feed_id: str
    status: str
    report: bytes | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class FeedsClient:
    """createFeedDocument, upload, createFeed, getFeed until it finishes (or ``timeout`` seconds
    pass, polling every ``poll`` seconds), then getFeedDocument and the report's download."""

    call: SpApiCall
    transfer: Transfer
    poll: float
    timeout: float

    async def submit(
        self, feed_type: str, content_type: str, document: bytes, marketplace_ids: Sequence[str]
    ) -> Feed:
        created = await self.call("POST", f"{FEEDS}/documents", {"contentType": content_type})
        failpoints.reach("amazon:feed-document")
        url = _field(created, "url", "createFeedDocument")
        upload = await self.transfer("PUT", url, {"content-type": content_type}, document)
        failpoints.reach("amazon:feed-uploaded")
        if not 200 <= upload.status_code < 300:
            refused = failure(upload)
            raise FeedError(f"Amazon refused the feed upload: {refused.error}", refused.retryable)
        specification = {
            "feedType": feed_type,
            "marketplaceIds": list(marketplace_ids),
            "inputFeedDocumentId": _field(created, "feedDocumentId", "createFeedDocument"),
        }
        feed_id = _field(await self.call("POST", f"{FEEDS}/feeds", specification), "feedId", "createFeed")
        failpoints.reach("amazon:feed-created")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            feed = await self.call("GET", f"{FEEDS}/feeds/{quote(feed_id, safe='')}", None)
            failpoints.reach("amazon:feed-polled")
            status = str(feed.get("processingStatus"))
            if status in FINISHED:
                break
            if loop.time() >= deadline:
                return Feed(feed_id, status, None)
            await asyncio.sleep(self.poll)
        result_id = feed.get("resultFeedDocumentId")
        report = await self._report(str(result_id)) if result_id else None
        failpoints.reach("amazon:feed-report")
        return Feed(feed_id, status, report)

    async def _report(self, document_id: str) -> bytes:
        location = await self.call("GET", f"{FEEDS}/documents/{quote(document_id, safe='')}", None)
        download = await self.transfer("GET", _field(location, "url", "getFeedDocument"), {}, None)
        if download.status_code != 200:
            refused = failure(download)
            why = f"cannot download Amazon's feed processing report: {refused.error}"
            raise FeedError(why, refused.retryable)
        content = download.content
        return gzip.decompress(content) if location.get("compressionAlgorithm") == "GZIP" else content


def _field(answer: Mapping[str, Any], name: str, operation: str) -> str:
    value = answer.get(name)
    if not value:
        raise FeedError(f"Amazon's {operation} answer has no '{name}'", retryable=True)
    return str(value)


# -- the connector's JSON_LISTINGS_FEED ----------------------------------------------------------


async def run_listings_feed(
    sender: Sender, headers: Mapping[str, str], document: Mapping[str, Any], marketplace_ids: list[str]
) -> tuple[Feed, dict[str, Any] | None]:
    """Send ``document`` as a ``JSON_LISTINGS_FEED``; the feed, and its processing report read."""

    async def call(method: str, path: str, body: Any) -> dict[str, Any]:
        """A Feeds API call that must succeed: any other answer stops the whole feed."""
        content = json_body(body) if body is not None else None
        sent = {**headers, "content-type": JSON_CONTENT_TYPE} if body is not None else dict(headers)
        response = await sender.send(method, path, headers=sent, content=content)
        try:
            answer = loads(response.content)
        except ValueError:
            answer = None
        if not 200 <= response.status_code < 300 or not isinstance(answer, dict):
            refused = failure(response)
            raise FeedError(f"Amazon Feeds API {method} {path} failed: {refused.error}", refused.retryable)
        return answer

    async def transfer(
        method: str, url: str, headers: Mapping[str, str], content: bytes | None
    ) -> httpx.Response:
        return await sender.send(method, url, headers=headers, content=content)

    client = FeedsClient(call, transfer, sender.pacing.poll_seconds, sender.pacing.feed_timeout_seconds)
    feed = await client.submit(
        "JSON_LISTINGS_FEED", LISTINGS_FEED_CONTENT_TYPE, json_body(document), marketplace_ids
    )
    if feed.report is None:
        return feed, None
    try:
        report = loads(feed.report)
    except ValueError:
        report = None
    if not isinstance(report, dict):
        raise FeedError("Amazon's feed processing report is not a JSON object", retryable=False)
    return feed, report


def feed_outcomes(
    feed: Feed, report: dict[str, Any] | None, skus: Mapping[int, str], pacing: Pacing
) -> dict[str, CallResult]:
    """Per SKU, what the feed did: its messages' ERROR issues (and its items' issues) fail it."""
    if feed.status != "DONE":
        if feed.status in FINISHED:
            reasons = issue_errors((report or {}).get("issues") or [])
            why = f"feed {feed.feed_id} ended {feed.status}" + (f": {'; '.join(reasons)}" if reasons else "")
            return {sku: CallResult(False, error=why) for sku in skus.values()}
        why = (
            f"feed {feed.feed_id} still {feed.status} after {pacing.feed_timeout_seconds:g} s; "
            "its outcome is unknown, so it will be sent again"
        )
        return {sku: CallResult(False, retryable=True, error=why) for sku in skus.values()}
    if report is None:
        why = f"feed {feed.feed_id} finished without a processing report; it will be sent again"
        return {sku: CallResult(False, retryable=True, error=why) for sku in skus.values()}
    by_message: dict[int | None, list[Any]] = {}
    for issue in report.get("issues") or []:
        if isinstance(issue, dict):
            message_id = issue.get("messageId")
            by_message.setdefault(message_id if isinstance(message_id, int) else None, []).append(issue)
    whole_feed = issue_errors(by_message.get(None, []))
    by_sku: dict[str, list[str]] = {}
    for item in report.get("items") or []:
        if isinstance(item, dict) and item.get("sku") is not None:
            by_sku[str(item["sku"])] = issue_errors(item.get("issues") or [])
    outcomes = {}
    for message_id, sku in skus.items():
        errors = whole_feed + issue_errors(by_message.get(message_id, [])) + by_sku.get(sku, [])
        outcomes[sku] = CallResult(False, error="; ".join(errors)) if errors else CallResult(True)
    return outcomes
