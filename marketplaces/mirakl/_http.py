"""Mirakl seller (shop) API basics shared by the catalog connector and the order channel.

What every Mirakl call needs, whatever it sends (``shared/specs/mirakl/SOURCE.md``):

- authentication: the shop API key, raw in ``Authorization`` (no ``Bearer``), as Mirakl's PHP
  SDK sends it (:func:`auth_headers`); ``shop_id`` as a query parameter on every call when the
  key reaches several shops (:func:`shop_params`);
- error mapping: the spec documents no error body, so an answer is read by its status alone
  (:func:`failure`): 429 and 5xx may pass later, 401/403 are the credentials' fault (a
  :class:`MiraklError` says so), any other 4xx the request's; the body's ``message`` (or its
  first characters) is the reason;
- CSV files: imports (P41, OF01, PRI01, STO01) upload ``multipart/form-data`` with the file in
  the part named ``file``, columns separated by ``;`` and quoted with ``"`` (:func:`csv_file`,
  :func:`csv_upload`); error reports (P44, OF03, PRI03, STO03) come back in the same format
  (:func:`csv_rows`);
- call frequency: every operation has a documented "Maximum usage" and the file declares no
  429, so a client spaces each operation's calls itself (:class:`CallSlots`, on a clock that
  tests and the sandbox scale: :class:`MiraklClock`);
- :class:`MiraklSender`: one request through an ``httpx.AsyncClient``, retried on 429, 5xx and
  lost connections under a :class:`~engine.connectors.RetryPolicy`, counted.

The guarantee: nothing here knows the catalog or orders; both sides build on it unchanged.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine import TradepostError
from engine.connectors import CallResult, RetryPolicy, json_body

CSV_DELIMITER = ";"
CSV_CONTENT_TYPE = "text/csv"

CALL_INTERVALS: Mapping[str, float] = {
    "P41": 15 * 60.0,
    "P42": 60.0,
    "OF01": 60.0,
    "OF01_WITH_PRODUCTS": 15 * 60.0,
    "OF02": 60.0,
    "OF03": 60.0,
    "OF24": 60.0,
    "PRI01": 60.0,
    "PRI02": 60.0,
    "PRI03": 60.0,
    "STO01": 60.0,
    "STO02": 15.0,
    "STO03": 60.0,
    "OR11": 60.0,
    "PM11": 3600.0,
    "H11": 3600.0,
}
"""Seconds between two calls of an operation: its "Maximum usage" (Call Frequency block of each
operation in ``mirakl-mmp-seller-openapi.json``; "once per minute" is 60 s). Operations not
listed (P44, P45, P31, OF21, order writes) are "when needed" and only paced by the rate limit."""


class MiraklError(TradepostError):
    """A Mirakl call failed in a way the caller cannot read an outcome from."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def auth_headers(api_key: str) -> dict[str, str]:
    """The shop key, raw (Mirakl's ``shop_api_key`` scheme has no prefix), and JSON answers."""
    return {"Authorization": api_key, "Accept": "application/json"}


def shop_params(shop_id: str | None, **params: str) -> dict[str, str]:
    """``params`` plus ``shop_id`` when one is set (without it Mirakl uses the key's default shop)."""
    return {**params, "shop_id": shop_id} if shop_id else dict(params)


# -- answers -------------------------------------------------------------------------------------


def error_message(response: httpx.Response) -> str:
    """The body's ``message`` (Mirakl's usual ``{"status", "message"}``), else its first characters."""
    body = json_body(response)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase


def may_pass_later(status: int) -> bool:
    """Throttling and server errors: the same call may pass later."""
    return status == 429 or status >= 500


def failure(response: httpx.Response, what: str = "") -> CallResult:
    """A non-2xx answer as an outcome: retryable for 429 and 5xx, else the request's (or the key's)."""
    status = response.status_code
    prefix = f"{what}: " if what else ""
    reason = error_message(response)
    if status in (401, 403):
        reason = f"the shop key was refused ({reason}); check the api_key credential and options.shop_id"
    return CallResult(False, retryable=may_pass_later(status), error=f"{prefix}{status} {reason}")


def raise_for_answer(response: httpx.Response, what: str) -> Any:
    """The JSON of a 2xx answer; a :class:`MiraklError` (retryable as :func:`failure` says) otherwise."""
    if 200 <= response.status_code < 300:
        return json_body(response)
    failed = failure(response, what)
    raise MiraklError(failed.error or what, failed.retryable)


# -- CSV -----------------------------------------------------------------------------------------


def csv_file(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """A Mirakl import file: a header row, then one line per row (missing columns empty), ``;``
    separated, every value quoted, UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=CSV_DELIMITER, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row[c]) for c in columns])
    return out.getvalue().encode("utf-8")


def csv_rows(content: bytes | str) -> list[dict[str, str]]:
    """The rows of a Mirakl CSV (an import file or an error report), by its header's names."""
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    reader = csv.DictReader(io.StringIO(text), delimiter=CSV_DELIMITER, quotechar='"')
    return [{str(k): (v or "") for k, v in row.items() if k is not None} for row in reader]


def csv_upload(content: bytes, name: str = "import.csv") -> dict[str, tuple[str, bytes, str]]:
    """httpx ``files=`` for an import: the file in the part named ``file``."""
    return {"file": (name, content, CSV_CONTENT_TYPE)}


# -- call frequency ------------------------------------------------------------------------------

Sleep = Callable[[float], Awaitable[None]]
SLOT_MARGIN = 1.02
"""Calls are spaced 2% more than the documented interval: requests leave on our clock and arrive
on the marketplace's, a few milliseconds apart; a 429 costs more than the 2% given up."""


@dataclass
class MiraklClock:
    """The time a Mirakl client measures call frequencies and polls on.

    ``scale`` speeds it up: at 600 a documented minute lasts 0.1 s, so tests and the sandbox run
    the once-a-minute rules without waiting real minutes (the stand-in takes the same scale).
    ``now`` and ``sleep`` are the real ones unless a test injects a fake clock.
    """

    scale: float = 1.0
    now: Callable[[], float] = time.monotonic
    sleep: Sleep = asyncio.sleep

    def seconds(self, documented: float) -> float:
        """A documented duration on this clock."""
        return documented / self.scale

    async def wait(self, documented: float) -> None:
        await self.sleep(self.seconds(documented))


@dataclass
class CallSlots:
    """Each operation's next allowed call, so calls keep the documented "Maximum usage".

    :meth:`wait_turn` reserves the operation's next slot and sleeps until it when it comes within
    ``max_wait`` documented seconds; otherwise it reserves nothing and answers how long is left,
    so the caller defers the work to a later run (a sync batch must not hold the other
    marketplaces for fifteen minutes) and sends it, coalesced with what came since, then.
    """

    clock: MiraklClock = field(default_factory=MiraklClock)
    intervals: Mapping[str, float] = field(default_factory=lambda: dict(CALL_INTERVALS))
    next_at: dict[str, float] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def left(self, operation: str) -> float:
        """Documented seconds until ``operation`` may be called (0: now)."""
        due = self.next_at.get(operation)
        return 0.0 if due is None else max(0.0, (due - self.clock.now()) * self.clock.scale)

    async def wait_turn(self, operation: str, max_wait: float = float("inf")) -> float:
        """0 once the call may go (its slot is taken); else the documented seconds still to wait."""
        async with self.lock:
            left = self.left(operation)
            if left > max_wait:
                return left
            interval = self.clock.seconds(self.intervals.get(operation, 0.0) * SLOT_MARGIN)
            self.next_at[operation] = self.clock.now() + self.clock.seconds(left) + interval
        if left > 0:
            await self.clock.wait(left)
        return 0.0


# -- sending -------------------------------------------------------------------------------------


@dataclass
class MiraklSender:
    """The client's own requests: authenticated with the shop key, scoped to the shop, retried, counted."""

    client: httpx.AsyncClient
    api_key: str
    shop_id: str | None = None
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=5, base=0.5, cap=30.0))
    count: int = 0
    retries: int = 0

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """The last answer; the transport error itself when even the last attempt got none."""
        query = shop_params(self.shop_id, **dict(params or {}))
        headers = auth_headers(self.api_key)

        async def attempt(n: int) -> httpx.Response:
            self.count += 1
            self.retries += n > 0
            if json is not None:
                return await self.client.request(method, path, params=query, headers=headers, json=json)
            return await self.client.request(
                method, path, params=query, headers=headers, files=files, data=data
            )

        return await self.retry.run_async(attempt)


__all__ = [
    "CALL_INTERVALS",
    "CSV_DELIMITER",
    "CallSlots",
    "MiraklClock",
    "MiraklError",
    "MiraklSender",
    "auth_headers",
    "csv_file",
    "csv_rows",
    "csv_upload",
    "error_message",
    "failure",
    "may_pass_later",
    "raise_for_answer",
    "shop_params",
]
