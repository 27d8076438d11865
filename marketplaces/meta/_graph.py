"""Talking to the Graph API: its error envelope, its usage header, and the connector's own requests.

Meta keys its errors on ``error.code`` (and ``error_subcode``), not on the HTTP status
(``shared/specs/meta/CATALOG.md`` section 5): throttling arrives as code 80014 (Catalog Batch),
80009 (Catalog Management) or the platform's 4, 17, 32 and 613, whatever the status; 190 is a
token Meta no longer accepts. Every answer may carry ``X-Business-Use-Case-Usage``: per business,
the share of each use case's budget spent (``call_count``, ``total_cputime``, ``total_time``, in
percent) and ``estimated_time_to_regain_access`` in minutes once throttled.

:class:`GraphSender` makes the connector's own requests (``items_batch``, the status polls):
each waits until the catalog may be called again (the usage header said it is throttled, or close
to), a throttled or failed request is retried after the wait Meta names (else a doubling pause),
and the calls to ``items_batch`` are spaced at the Catalog Batch budget the rule file declares.
A wait longer than :attr:`Pacing.max_wait_seconds` is not waited: the request fails, retryable,
and the next run sends it, rather than holding the marketplace's lock for an hour.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from engine.connectors import json_body, retry_after
from engine.jsonio import loads

THROTTLE_CODES = frozenset({4, 17, 32, 613, 80009, 80014})
"""Graph error codes that mean "too many calls": the app's, the user's, the page's, a custom limit,
Catalog Management's and Catalog Batch's (CATALOG.md section 5)."""
TRANSIENT_CODES = frozenset({2})
"""Service temporarily unavailable; any error Meta marks ``is_transient`` is retried too."""
TOKEN_CODES = frozenset({102, 190})
"""The access token is invalid, expired or revoked: no retry helps, a new token does."""
USAGE_HEADER = "X-Business-Use-Case-Usage"
Sleep = Callable[[float], Awaitable[None]]
PACE = 0.95
"""Share of the batch budget used: calls leave at our pace but arrive with jitter; Meta counts arrivals."""


@dataclass(frozen=True)
class GraphError:
    """One refusal, read from the ``{"error": {...}}`` envelope (or from the status alone)."""

    status: int
    code: int | None
    subcode: int | None
    message: str
    transient: bool = False

    @classmethod
    def of(cls, response: httpx.Response) -> GraphError | None:
        """The answer's error; None for a 2xx answer without one."""
        body = json_body(response)
        error = body.get("error") if isinstance(body, Mapping) else None
        if isinstance(error, Mapping):
            return cls(
                response.status_code,
                _int(error.get("code")),
                _int(error.get("error_subcode")),
                str(error.get("error_user_msg") or error.get("message") or "").strip()[:300],
                bool(error.get("is_transient")),
            )
        if 200 <= response.status_code < 300:
            return None
        text = response.text.strip()[:300] or response.reason_phrase
        return cls(response.status_code, None, None, text)

    @property
    def throttled(self) -> bool:
        return self.status == 429 or self.code in THROTTLE_CODES

    @property
    def token_refused(self) -> bool:
        return self.code in TOKEN_CODES or self.status == 401

    @property
    def retryable(self) -> bool:
        """Throttling, a server error, or an error Meta calls transient: the same call may pass later."""
        return self.throttled or self.status >= 500 or self.transient or self.code in TRANSIENT_CODES

    def line(self) -> str:
        code = f" (#{self.code}" + (f"/{self.subcode}" if self.subcode else "") + ")" if self.code else ""
        hint = "; the access token is refused: create a new system user token" if self.token_refused else ""
        return f"{self.status}{code} {self.message}{hint}"


@dataclass(frozen=True)
class Usage:
    """What one answer's ``X-Business-Use-Case-Usage`` says about a use case: the highest share of
    its budget spent (percent) and the minutes until a throttled catalog may call again."""

    percent: float = 0.0
    regain_minutes: float = 0.0

    @classmethod
    def of(cls, response: httpx.Response) -> Usage:
        """The most spent of every use case the header names; nothing when it is absent."""
        try:
            by_business = loads(response.headers.get(USAGE_HEADER, "") or "{}")
        except ValueError:
            return cls()
        percent, regain = 0.0, 0.0
        for entries in by_business.values() if isinstance(by_business, Mapping) else ():
            for entry in entries if isinstance(entries, list) else ():
                if not isinstance(entry, Mapping):
                    continue
                shares = (entry.get(key) for key in ("call_count", "total_cputime", "total_time"))
                percent = max([percent, *(_number(share) for share in shares)])
                regain = max(regain, _number(entry.get("estimated_time_to_regain_access")))
        return cls(percent, regain)


@dataclass(frozen=True)
class Pacing:
    """How the connector paces and retries its own requests (rule-file options; tests shorten them)."""

    batch_calls_per_minute: float = 8.0
    """Catalog Batch calls a minute. Meta's formula is not published; a third-party client reports
    about 8 a minute for a new catalog (CATALOG.md section 5), and the usage header corrects it."""
    usage_ceiling: float = 95.0
    """From this share of a budget spent (percent), wait a minute before the next call."""
    attempts: int = 6
    retry_seconds: float = 1.0
    """First pause after a 5xx or a lost connection; doubles each attempt."""
    poll_seconds: float = 5.0
    """First pause between status checks of a batch; doubles up to a minute."""
    batch_timeout_seconds: float = 3600.0
    max_wait_seconds: float = 900.0
    """The longest single wait a throttled catalog may ask for before the run gives the request up."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Pacing:
        default = cls()
        return cls(
            batch_calls_per_minute=float(
                options.get("batch_calls_per_minute") or default.batch_calls_per_minute
            ),
            usage_ceiling=float(options.get("usage_ceiling") or default.usage_ceiling),
            attempts=max(1, int(options.get("max_attempts") or default.attempts)),
            retry_seconds=float(options.get("retry_seconds") or default.retry_seconds),
            poll_seconds=float(options.get("poll_seconds") or default.poll_seconds),
            batch_timeout_seconds=float(
                options.get("batch_timeout_seconds") or default.batch_timeout_seconds
            ),
            max_wait_seconds=float(options.get("max_wait_seconds") or default.max_wait_seconds),
        )


class TooLongAWait(Exception):
    """Meta asked for a pause longer than :attr:`Pacing.max_wait_seconds`."""

    def __init__(self, seconds: float, error: GraphError | None) -> None:
        self.seconds, self.error = seconds, error
        why = f": {error.line()}" if error else ""
        super().__init__(f"the catalog is throttled for another {seconds / 60:.0f} min{why}")


@dataclass
class GraphSender:
    """The connector's own requests: paced, throttling honoured, retried, counted.

    ``count`` is every request made (``retries`` of them sent again) and ``throttled`` every
    throttling answer, for the executor's summary and the benchmark.
    """

    client: httpx.AsyncClient
    pacing: Pacing
    headers: Mapping[str, str]
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    count: int = 0
    retries: int = 0
    throttled: int = 0
    resume_at: float = 0.0
    """When the catalog may be called again (the clock's time), from the last usage header."""
    next_batch_at: float = 0.0
    waited: float = 0.0

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        batch: bool = False,
    ) -> httpx.Response:
        """The last answer; raises the transport error when even the last attempt got none, and
        :class:`TooLongAWait` when the catalog asks for a pause past the budget."""
        error: GraphError | None = None
        for attempt in range(self.pacing.attempts):
            self.retries += 1 if attempt else 0
            await self._wait_turn(batch, error)
            headers = {**self.headers, "Content-Type": "application/json"} if content else dict(self.headers)
            self.count += 1
            try:
                response = await self.client.request(
                    method, path, params=dict(params or {}), content=content, headers=headers
                )
            except httpx.TransportError:
                if attempt + 1 == self.pacing.attempts:
                    raise
                await self._pause(self.pacing.retry_seconds * 2**attempt)
                continue
            self._observe(response)
            error = GraphError.of(response)
            if error is None or not error.retryable or attempt + 1 == self.pacing.attempts:
                return response
            if error.throttled:
                self.throttled += 1
            # Throttled: the usage header's regain time is already in resume_at; otherwise the
            # Retry-After a proxy may add, else a doubling pause (CATALOG.md: "back off exponentially").
            asked = retry_after(response)
            if asked is not None and asked > self.pacing.max_wait_seconds:
                raise TooLongAWait(asked, error)
            await self._pause(asked if asked is not None else self.pacing.retry_seconds * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns")

    def _observe(self, response: httpx.Response) -> None:
        """Read the usage header: throttled, wait what Meta names; close to it, a minute."""
        usage = Usage.of(response)
        now = self.clock()
        if usage.regain_minutes:
            self.resume_at = max(self.resume_at, now + usage.regain_minutes * 60)
        elif usage.percent >= self.pacing.usage_ceiling:
            self.resume_at = max(self.resume_at, now + 60.0)

    async def _wait_turn(self, batch: bool, error: GraphError | None) -> None:
        now = self.clock()
        turn = max(self.resume_at, self.next_batch_at if batch else 0.0)
        if turn - now > self.pacing.max_wait_seconds:
            raise TooLongAWait(turn - now, error)
        if batch:
            self.next_batch_at = max(turn, now) + 60.0 / (self.pacing.batch_calls_per_minute * PACE)
        await self._pause(turn - now)

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.waited += seconds
            await self.sleep(seconds)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float:
    """A usage figure; 0 for one absent or unreadable (a header is advice, never a reason to fail)."""
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0
