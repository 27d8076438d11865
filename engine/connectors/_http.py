"""The HTTP transport of every real connection: httpx's interface over aiohttp's connections.

The VTEX reader and the sync worker's executors send hundreds of requests a second and, on a small
machine, spend most of their CPU in the HTTP client. httpx's own asyncio transport (httpcore on
anyio) cost about 1.1 ms of CPU per request in a profile (it checks every pooled connection for
every request, and opens anyio cancel scopes for each read); aiohttp's, with its C parser, about
0.5 ms. ``httpx-aiohttp`` (by an httpx maintainer, the transport the OpenAI SDK uses) puts aiohttp
under ``httpx.AsyncClient``, so the reader, the connectors, their tests and every in-process
transport keep httpx's interface.

What this module adds to that library's transport:

- **One connection per request in flight**: a connector limited to ``connections`` (the VTEX
  source's ``concurrency``), kept alive between requests, over the ``tls`` context given (else
  :func:`tls_context`, the process's one: loading the CA bundle costs ~20 ms); no proxy is read
  from the environment (``HTTPS_PROXY`` is not followed: see ``trust_env`` below);
- **Only httpx's errors**: every aiohttp failure, while sending or while reading the body, is
  raised as an ``httpx.TransportError`` (a timeout as ``httpx.TimeoutException``), so the reader's
  retry policy sees a VTEX that answers nothing, garbage or a broken connection the way it sees
  them with any other transport. The library maps most, not all (an unparsable answer, a total
  timeout): an unmapped one would reach the user as a traceback.

And :class:`Client`, the ``httpx.AsyncClient`` every connection is made with: the same client, less
CPU on each request's way (a quarter less to build one, no cookie parsing where none is set).

And one event hook for whoever counts requests (the Prometheus metrics): :func:`on_request` adds a
listener, told of each request an :class:`Observed` transport sent: whose client sent it (a
marketplace's name) and the answer's status, or None when none came. The listener must be quick and
must not raise: it runs on the request's path.
"""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
import httpx_aiohttp

__all__ = ["AiohttpTransport", "Client", "Observed", "on_request", "tls_context"]


RequestListener = Callable[[str, int | None], None]
"""Told of one request sent: the client's name, and the answer's status (None: no answer)."""
_listeners: list[RequestListener] = []


def on_request(listener: RequestListener) -> None:
    """Tell ``listener`` of every request an :class:`Observed` transport sends from now on."""
    _listeners.append(listener)


class Observed(httpx.AsyncBaseTransport):
    """A transport that tells the :func:`on_request` listeners of each request it sends for ``name``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, name: str) -> None:
        self.inner, self.name = inner, name

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except Exception:  # no answer; a cancelled request is not counted
            self._tell(None)
            raise
        self._tell(response.status_code)
        return response

    def _tell(self, status: int | None) -> None:
        for listener in _listeners:
            listener(self.name, status)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Client(httpx.AsyncClient):
    """``httpx.AsyncClient``, with two costs of each request cut, and nothing else changed.

    - A path relative to ``base_url`` is parsed once, joined to it as text: httpx parses it, then
      the URL it makes of the two (validating the host each time), which was 30% of building a
      request in a profile. The URL is the one httpx makes (``tests/test_http_client.py`` holds
      them equal); an absolute URL, or a base URL with a query, goes httpx's own way.
    - An answer is read for cookies only when it sets one (a ``Set-Cookie`` header): httpx reads
      every answer through the standard library's cookie jar, a fifth of its own CPU per request,
      and the APIs these clients call authenticate by header and set none.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._cookies = _Cookies(self._cookies)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: httpx._types.CookieTypes) -> None:
        self._cookies = _Cookies(cookies)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        base = self.base_url
        plain = base.host and not base.query and not base.fragment
        if plain and isinstance(url, str) and not _NOT_A_PATH.match(url):
            prefix = str(base)  # the path of a base URL ends with "/" (httpx adds it), or is ""
            return httpx.URL(f"{prefix}{'' if prefix.endswith('/') else '/'}{url.lstrip('/')}")
        return super()._merge_url(url)


_NOT_A_PATH = re.compile(r"[^/?#]*:|//|[^#]*#")
"""What httpx's own join must see: a scheme or a colon before the path's first ``/``, a host
(``//``), a fragment."""


class _Cookies(httpx.Cookies):
    """A cookie jar that reads an answer only when it sets a cookie."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The one TLS context of every client this process makes.

    Loading the CA bundle costs about 20 ms; httpx and httpx-aiohttp each build a context per
    client or transport otherwise, and the sync worker makes a client per marketplace per batch.
    A context is safe to share across threads.
    """
    return httpx.create_ssl_context()


class AiohttpTransport(httpx_aiohttp.AiohttpTransport):
    """An ``httpx`` async transport sending over aiohttp, at most ``connections`` at once."""

    def __init__(self, connections: int, tls: ssl.SSLContext | None = None) -> None:
        context = tls_context() if tls is None else tls
        super().__init__(
            verify=context,  # the library would build one more context (20 ms) for each transport
            client=lambda: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=connections, ssl=context),
                # Not trust_env: with it aiohttp looks each request's host up in ~/.netrc in a
                # thread of its own, which cost the VTEX reader 40% of its throughput.
                trust_env=False,
            ),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _httpx_errors(request):
            response = await super().handle_async_request(request)
        response.stream = _Body(response.stream, request)
        return response


class _Body(httpx.AsyncByteStream):
    """A response body whose aiohttp failures are raised as httpx's."""

    def __init__(self, stream: httpx.AsyncByteStream | httpx.SyncByteStream, request: httpx.Request) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream, self._request = stream, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        with _httpx_errors(self._request):
            await self._stream.aclose()


@contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """Raise aiohttp's failures (and a timeout) as the ``httpx.TransportError`` that names them.

    The library maps some already, not always to the right name (a server that closed the
    connection is its ``ConnectTimeout``); its error keeps aiohttp's as ``__cause__``, which is
    mapped again here.
    """
    try:
        yield
    except Exception as error:
        cause = error.__cause__ if isinstance(error, httpx.TransportError) else error
        mapped = _mapped(cause, request) if cause is not None else None
        if mapped is None:
            raise
        raise mapped from None


def _mapped(error: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx error for an aiohttp failure (None: not one)."""
    if isinstance(error, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return httpx.ReadTimeout(_reason(error, "no answer in time"), request=request)
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(_reason(error, "could not connect"), request=request)
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(_reason(error, "closed the connection"), request=request)
    if isinstance(error, aiohttp.ClientPayloadError):
        return httpx.ReadError(_reason(error, "the answer's body broke off"), request=request)
    if isinstance(error, aiohttp.ClientError):
        return httpx.RemoteProtocolError(_reason(error, "the answer is not HTTP"), request=request)
    return None


def _reason(error: BaseException, default: str) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text or default}"
