"""Reading back a list that pages by token: each page asked for with the token the last one gave.

Most marketplace listings page this way (Google's ``products.list`` with ``nextPageToken``,
Amazon's ``searchListingsItems`` with ``pagination.nextToken``): a page names the next one and the
last names none. :func:`token_pages` follows them through a :class:`~engine.connectors.Reader`
(which paces, retries and counts), so a connector's read-back says only where the token is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from engine.connectors._readback import ReadBackError

if TYPE_CHECKING:
    from engine.connectors._reader import Reader


async def token_pages(
    reader: Reader,
    path: str,
    params: Mapping[str, str],
    *,
    next_token: str,
    token_param: str,
    max_pages: int = 100_000,
) -> AsyncIterator[Mapping[str, Any]]:
    """Each page (a JSON object) of ``GET path``; ``next_token`` is where a page names the next
    (dotted for a nested key: ``pagination.nextToken``), ``token_param`` the query parameter
    that asks for it. A page that is not an object, or a list that never ends, is a
    :class:`~engine.connectors.ReadBackError`."""
    query = dict(params)
    for _ in range(max_pages):
        page = await reader.get(path, query)
        if not isinstance(page, Mapping):
            raise ReadBackError(f"GET {path} did not answer a JSON object")
        yield page
        token: Any = page
        for key in next_token.split("."):
            token = token.get(key) if isinstance(token, Mapping) else None
        if not token:
            return
        query = {**params, token_param: str(token)}
    raise ReadBackError(f"GET {path} did not end after {max_pages} pages")
