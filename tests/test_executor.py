"""The executor against a scripted marketplace: retries, backoff, state writes, resume, locks, secrets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from engine.connectors import Connector, Route, RouteKind
from engine.model._listing import Listing
from engine.secrets._redact import redact, register
from engine.state._store import LockedError, StateStore
from engine.sync._executor import Executor, TokenBucket

LISTING = Listing("10", "1", "test", "CAT", {"title": "Tênis"}, Decimal("134.90"), "BRL", 4)


class ScriptedConnector(Connector):
    """PUT /items/{sku} with the payload; a test decides what the marketplace answers."""

    name = "test"
    rate_limit = 1000.0

    routes: ClassVar[Mapping[RouteKind, Route]] = {
        "create": Route("PUT", "/items/{sku_id}"),
        "delete": Route("DELETE", "/items/{sku_id}"),
    }


def record(sku_id: str, op: str = "create", price: str = "134.90") -> dict[str, Any]:
    listing = Listing(sku_id, "1", "test", "CAT", {"title": "Tênis"}, Decimal(price), "BRL", 4)
    data = {"op": op, "sku_id": sku_id, "after": listing.to_dict(), "payloads": [{"price": Decimal(price)}]}
    return data


def run(
    state: StateStore,
    handler: Callable[[httpx.Request], httpx.Response],
    records: list[dict[str, Any]],
    **options: Any,
) -> tuple[Any, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def main() -> Any:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(handler), base_url="http://m.test"
        ) as client:
            executor = Executor(ScriptedConnector(), client, state, sleep=sleep, seed=1, **options)
            return await executor.apply(records)

    return asyncio.run(main()), slept


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state.sqlite")


def test_success_is_recorded_in_state_with_the_exact_price(state: StateStore) -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(200, json={"ok": True})

    summary, _ = run(state, handler, [record("10"), record("11")])
    assert (summary.applied, summary.failed, summary.requests) == (2, 0, 2)
    assert b'"price": 134.90' in bodies[0]  # an exact JSON number, not 134.9
    row = state.get("test", "10")
    assert row is not None and row.price == Decimal("134.90") and row.content_hash == LISTING.content_hash()


def test_429_and_500_are_retried_honouring_retry_after(state: StateStore) -> None:
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(500), httpx.Response(200)]
    )
    summary, slept = run(state, lambda request: next(answers), [record("10")])
    assert (summary.applied, summary.retries, summary.requests) == (1, 2, 3)
    assert slept[0] >= 2.0  # Retry-After wins over a shorter backoff
    assert state.get("test", "10") is not None


def test_a_4xx_is_never_retried_and_the_failure_is_kept(state: StateStore) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"message": "title too long"})

    summary, _ = run(state, handler, [record("10")])
    assert (summary.applied, summary.failed, len(calls)) == (0, 1, 1)
    assert "title too long" in (summary.failures[0].error or "")
    assert state.get("test", "10") is None
    assert "title too long" in state.errors("test")["10"]


def test_transport_errors_are_retried_then_given_up(state: StateStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    summary, slept = run(state, handler, [record("10")], max_attempts=3)
    assert summary.failed == 1 and summary.retries == 2 and len(slept) == 2
    assert "gave up after 3 attempts" in (summary.failures[0].error or "")


def test_a_resumed_run_sends_nothing_already_applied(state: StateStore) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200)

    run(state, handler, [record("10")])
    run(state, handler, [record("10"), record("11")])
    assert sent == ["/items/10", "/items/11"]


def test_delete_removes_the_state_row(state: StateStore) -> None:
    run(state, lambda request: httpx.Response(200), [record("10")])
    summary, _ = run(state, lambda request: httpx.Response(204), [record("10", "delete")])
    assert summary.applied == 1 and state.get("test", "10") is None


def test_secrets_never_reach_errors_or_state(state: StateStore) -> None:
    register("s3cr3t-token-value")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "invalid token s3cr3t-token-value"})

    summary, _ = run(state, handler, [record("10")])
    error = summary.failures[0].error or ""
    assert "s3cr3t" not in error and "***" in error
    assert "s3cr3t" not in json.dumps(state.errors("test"))
    assert redact("Bearer s3cr3t-token-value") == "Bearer ***"


def test_a_second_run_on_the_same_marketplace_is_refused(state: StateStore, tmp_path: Path) -> None:
    state.acquire_lock("test", "first")
    other = StateStore(tmp_path / "state.sqlite")
    # Same process, same host: the lock's pid is alive, so it holds.
    with pytest.raises(LockedError, match="test is locked by first"):
        other.acquire_lock("test", "second")
    state.release_lock("test")
    other.acquire_lock("test", "second")


def test_token_bucket_paces_requests_at_the_rate() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds  # a fake clock: the test measures the schedule, not the machine

    async def main() -> float:
        bucket = TokenBucket(50.0, clock=lambda: now[0], sleep=sleep)
        for _ in range(11):
            await bucket.acquire()
        return now[0]

    assert asyncio.run(main()) == pytest.approx(0.2)  # 11 requests: the first at once, then 10 at 50/s


def test_log_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from cli.main import configure_logging

    register("another-s3cr3t-value")
    configure_logging()
    logging.getLogger("httpx").warning("POST /oauth/token refresh_token=another-s3cr3t-value failed")
    err = capsys.readouterr().err
    assert "another-s3cr3t-value" not in err
    assert "refresh_token=*** failed" in err


def test_a_refresh_token_rotated_mid_run_is_saved_before_the_next_request(state: StateStore) -> None:
    """The token is refreshed (and rotated) between two requests: it is persisted before the
    second one goes, so a run killed right after cannot lose it."""
    saved: list[str] = []
    rotated = {"refresh_token": "TG-1"}

    class Rotating(ScriptedConnector):
        async def auth_headers(self, client: httpx.AsyncClient, credentials: Any) -> dict[str, str]:
            return {"Authorization": "Bearer x"}

        def rotated_credentials(self) -> dict[str, str]:
            return dict(rotated)

    seen_when_sent: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen_when_sent.append(list(saved))
        rotated["refresh_token"] = f"TG-{len(seen_when_sent) + 1}"  # the next auth rotates it
        return httpx.Response(200, json={"ok": True})

    def persist() -> None:
        token = rotated["refresh_token"]
        if not saved or saved[-1] != token:
            saved.append(token)

    async def main() -> Any:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(handler), base_url="http://m.test"
        ) as client:
            executor = Executor(Rotating(), client, state, seed=1, after_auth=persist, concurrency=1)
            return await executor.apply([record("10"), record("11")])

    summary = asyncio.run(main())

    assert summary.applied == 2
    assert seen_when_sent == [["TG-1"], ["TG-1", "TG-2"]]


def test_a_retry_after_past_the_budget_fails_the_change_at_once_and_says_why(state: StateStore) -> None:
    """A marketplace asking to wait a day must not hold the run (and its lock) for a day."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(429, headers={"Retry-After": "86400"}, json={"message": "come back tomorrow"})

    summary, slept = run(state, handler, [record("10"), record("11")])
    assert (summary.applied, summary.failed, len(calls), slept) == (0, 2, 2, [])
    error = summary.failures[0].error or ""
    assert "asked to wait 86400 s (Retry-After)" in error and "the next run sends it" in error
    assert "come back tomorrow" in error
    assert state.get("test", "10") is None
