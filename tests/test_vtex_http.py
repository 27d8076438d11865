"""The VTEX source's transport over real loopback sockets: a VTEX that answers well, garbage,
half an answer, nothing, or hangs.

A raw asyncio server on 127.0.0.1 plays each. Whatever it does, the reader sees only httpx's
errors, retries them by its policy and then reports the call as failed (``CallFailed``, marked
unavailable), with the cause named; never an aiohttp exception, never a traceback.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import pytest

from engine.connectors import AiohttpTransport, RetryPolicy
from marketplaces.vtex import VtexReader
from marketplaces.vtex._reader import CallFailed

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"price":9.90}'


@contextmanager
def raw_server(handler: Handler) -> Iterator[tuple[str, list[int]]]:
    """``handler`` serving every connection on a free loopback port; the base URL and a list
    with one entry per connection accepted."""
    connections: list[int] = []
    ready = threading.Event()
    box: dict[str, object] = {}

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        stop = asyncio.Event()
        server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        box.update(port=server.sockets[0].getsockname()[1], loop=asyncio.get_running_loop(), stop=stop)
        ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{box['port']}", connections
    finally:
        loop, stop = box["loop"], box["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


async def _requests(reader: asyncio.StreamReader) -> bool:
    """Read one request's head (no body: the calls are GETs); False once the client is gone."""
    try:
        return bool(await reader.readuntil(b"\r\n\r\n"))
    except asyncio.IncompleteReadError:
        return False


def _reader(url: str, timeout: float = 5.0) -> VtexReader:
    client = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(timeout), transport=AiohttpTransport(4))
    return VtexReader(client, RetryPolicy(attempts=2, base=0.01, cap=0.01), owns_client=True)


def _call(reader: VtexReader) -> object:
    return reader._on_loop(reader.call("GET", "/pricing/prices/1", None))


async def _keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A good VTEX: the same answer to every request, on one kept-alive connection."""
    while await _requests(reader):
        writer.write(OK)
        await writer.drain()


def test_answers_decode_exactly_and_one_connection_serves_many_calls() -> None:
    with raw_server(_keep_alive) as (url, connections):
        vtex = _reader(url)
        try:
            answers = [_call(vtex) for _ in range(5)]
        finally:
            vtex.close()
    assert answers == [{"price": Decimal("9.90")}] * 5
    assert len(connections) == 1
    assert vtex.requests == 5 and vtex.retries == 0


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _requests(reader)
    writer.write(b"this is not HTTP at all\r\n\r\n")
    await writer.drain()


async def _nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _requests(reader)  # then the connection closes without a byte


async def _half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _requests(reader)
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{"pri')
    await writer.drain()


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _requests(reader)
    await asyncio.sleep(2)


@pytest.mark.parametrize(
    ("handler", "cause"),
    [
        (_garbage, "RemoteProtocolError"),
        (_nothing, "RemoteProtocolError"),
        (_half, "ReadError"),
        (_hang, "ReadTimeout"),
    ],
    ids=["garbage", "closed-without-answer", "half-a-body", "no-answer-in-time"],
)
def test_a_vtex_that_breaks_the_answer_is_retried_then_reported_unavailable(
    handler: Handler, cause: str
) -> None:
    with raw_server(handler) as (url, connections):
        vtex = _reader(url, timeout=0.3)
        try:
            with pytest.raises(CallFailed) as failed:
                _call(vtex)
        finally:
            vtex.close()
    assert failed.value.unavailable
    message = str(failed.value)
    assert message.startswith("GET /pricing/prices/1 failed 2 times, last with ")
    assert cause in message and "aiohttp" not in message
    assert vtex.requests == 2 and vtex.retries == 1
    # A broken connection is never reused (aiohttp itself retries a GET once on a connection
    # closed without an answer, hence at least, not exactly, one connection per request).
    assert len(connections) >= 2


def test_nothing_listening_is_a_connect_error_after_the_retries() -> None:
    with raw_server(_nothing) as (url, _):
        pass  # the port is free again
    vtex = _reader(url)
    try:
        with pytest.raises(CallFailed) as failed:
            _call(vtex)
    finally:
        vtex.close()
    assert failed.value.unavailable and "ConnectError" in str(failed.value)


def test_a_reader_dropped_unclosed_closes_its_connections(caplog: pytest.LogCaptureFixture) -> None:
    """A source nobody closes (a catalog read, then dropped) must not leave aiohttp to complain
    "Unclosed client session" on the user's terminal when it is collected."""

    with raw_server(_keep_alive) as (url, _):
        vtex = _reader(url)
        assert _call(vtex) == {"price": Decimal("9.90")}
        del vtex
        gc.collect()
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]
