"""The connections' client (``engine.connectors._http.Client``): httpx's, with two costs cut.

Its URL for a path relative to the base URL must be the very URL httpx makes, for any path; and
cookies a server sets must still be kept and sent back, though answers that set none are not read.
"""

from __future__ import annotations

import asyncio

import httpx
from hypothesis import given
from hypothesis import strategies as st

from engine.connectors._http import Client

BASES = [
    "https://api.mercadolibre.com",
    "http://127.0.0.1:8080/api/v1/",
    "https://sellingpartnerapi-na.amazon.com/listings/2021-08-01",
    "http://[::1]:9000/x%20y/",
]
PATH = st.text(alphabet=st.sampled_from("ab/?#&=%:.@ ç~+;,!$'()*[]\\\"\t20F"), max_size=24)


@given(base=st.sampled_from(BASES), path=PATH)
def test_a_relative_path_gives_the_url_httpx_gives(base: str, path: str) -> None:
    client = Client(base_url=base)
    try:
        theirs = httpx.AsyncClient._merge_url(client, path)
    except httpx.InvalidURL:
        return  # httpx refuses it; nothing to compare
    assert str(client._merge_url(path)) == str(theirs)


def test_absolute_urls_and_urls_without_a_base_are_httpx_own() -> None:
    assert (
        str(Client(base_url="http://a.test/v1/")._merge_url("https://b.test/x?y=1")) == "https://b.test/x?y=1"
    )
    assert str(Client()._merge_url("https://b.test/x")) == "https://b.test/x"
    with_query = Client(base_url="http://a.test/v1?key=1")
    assert with_query._merge_url("items") == httpx.AsyncClient._merge_url(with_query, "items")


def test_cookies_set_by_a_server_are_kept_and_sent_back() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        if request.url.path == "/login":
            return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"})
        return httpx.Response(200, json={})

    async def calls() -> httpx.Cookies:
        async with Client(base_url="http://shop.test", transport=httpx.MockTransport(handler)) as client:
            await client.get("/items")
            await client.get("/login")
            await client.get("/items")
            return client.cookies

    cookies = asyncio.run(calls())
    assert seen == [None, None, "session=abc"]
    assert dict(cookies) == {"session": "abc"}


def test_a_client_given_cookies_sends_them() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(204)

    async def call() -> None:
        async with Client(transport=httpx.MockTransport(handler), cookies={"a": "1"}) as client:
            await client.get("http://shop.test/")
            client.cookies = {"b": "2"}
            await client.get("http://shop.test/")

    asyncio.run(call())
    assert seen == ["a=1", "b=2"]
