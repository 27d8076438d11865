"""The VTEX source: a store's SKUs in one trade policy, read from VTEX's APIs as canonical records.

What it calls, per page of SKU ids and per SKU (paths and fields from VTEX's OpenAPI specs):

- ``GET /api/catalog_system/pvt/sku/stockkeepingunitidsbysaleschannel?sc=&page=&pageSize=&onlyAssigned=true``
  (Catalog API, "List all SKUs in a sales channel"): the SKU ids of the trade policy, a page
  at a time; the documented trade-policy listing, so no SKU outside it is ever fetched;
- ``POST /api/checkout/pub/orderForms/simulation?sc=`` (Checkout API), once per page: the
  prices after promotions of the whole page in one call;
- ``GET /api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}?sc=`` (Catalog API, "Get SKU
  and context"): product, SKU, categories, brand, specifications, images, dimensions;
- ``GET /pricing/prices/{itemId}`` and ``GET /pricing/prices/{itemId}/computed/{tradePolicyId}``
  (Pricing API, at ``https://api.vtex.com/{account}``): base, cost, list and selling prices;
- ``GET /api/logistics/pvt/inventory/skus/{skuId}`` (Logistics API): stock per warehouse.

The field-by-field mapping is ``_mapping.py`` (the table of ``docs/catalog.md`` as code).

A source never builds its HTTP client: the caller (``vtex_records``, the sandbox, a test) mounts
the transport, base URL and credentials, so the same code runs against VTEX, the stand-in in
process, or the stand-in on a loopback socket.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from engine import TradepostError
from engine.catalog import CatalogRecord, FirstSeen, JsonLimitError, MalformedRecord, SourceItem, read_json
from engine.connectors import RetryPolicy, Source
from engine.project import ConfigError, SourceConfig, VtexAccount
from engine.secrets import check_header_value, read_secret, redact, register
from marketplaces.vtex._mapping import VtexShapeError, promotional_prices, vtex_record
from marketplaces.vtex._order_placement import VtexOrders

__all__ = ["VtexAccessError", "VtexCatalogSource", "VtexSource", "vtex_account", "vtex_records"]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000  # the largest page VTEX documents for its SKU id listings
SELLER_ID = "1"
"""VTEX's id for the store itself as the seller of its own SKUs (used in the simulation)."""

_LIST_SKUS = "/api/catalog_system/pvt/sku/stockkeepingunitidsbysaleschannel"
_SKU_CONTEXT = "/api/catalog_system/pvt/sku/stockkeepingunitbyid/{sku}"
_PRICE = "/pricing/prices/{sku}"
_COMPUTED_PRICE = "/pricing/prices/{sku}/computed/{trade_policy}"
_INVENTORY = "/api/logistics/pvt/inventory/skus/{sku}"
_SIMULATION = "/api/checkout/pub/orderForms/simulation"

_RESOURCES = {
    "/api/catalog_system/": "Catalog: View Product (or SKUs)",
    "/pricing/": "Pricing: Read prices",
    "/api/logistics/": "Logistics: Logistics viewer (or inventory read only)",
}
"""Path part -> the License Manager resource an AppKey's role needs for it (from the specs)."""


class VtexAccessError(TradepostError):
    """VTEX refused the credentials (401) or the key's role lacks a resource (403).

    Raised, not yielded: every further call would be refused the same way, and a million
    malformed records would hide the one fix needed. The message names the call and the
    resource, never the AppToken.
    """

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class _CallFailed(Exception):
    """A call that failed for good (a 4xx, or 5xx/429/transport errors on every attempt).

    ``unavailable`` when VTEX never answered usefully (every attempt 5xx, 429 or no answer): a
    later read may well succeed, unlike a 4xx or an answer that is not JSON.
    """

    def __init__(self, message: str, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


class VtexSource:
    """The SKUs of one trade policy as a stream of records, like ``FileSource`` reads a file.

    ``records()`` yields, page by page in VTEX's listing order, a :class:`CatalogRecord` for
    every SKU and a :class:`MalformedRecord` (with the SKU id and the reason) for every SKU
    whose calls kept failing or whose data does not fit the model; the stream goes on past
    them. Memory holds one page of ids and its simulated prices, whatever the store's size.

    ``complete`` is true only once the listing was read to its end: a listing page that
    keeps failing ends the stream with a last MalformedRecord, and the planner then
    withholds every delete rather than withdraw the SKUs it did not see.

    Retries (:attr:`retry`, a :class:`~engine.connectors.RetryPolicy`): 429 and 5xx (waiting
    what Retry-After says) and transport errors, up to ``max_attempts`` calls with exponential
    backoff from ``backoff`` seconds and jitter, no wait longer than ``max_wait``. Other 4xx
    are not retried: the request is wrong, or the SKU is gone. 401/403 raise :class:`VtexAccessError`.

    ``pricing_url`` is where the Pricing API lives (``https://api.vtex.com/{account}``); None
    sends its calls to the client's base URL, as the stand-in serves every API on one host.
    """

    def __init__(
        self,
        client: httpx.Client,
        trade_policy: str,
        page_size: int = DEFAULT_PAGE_SIZE,
        *,
        pricing_url: str | None = None,
        seller_id: str = SELLER_ID,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owns_client: bool = False,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.client = client
        self.trade_policy = str(trade_policy)
        self.page_size = page_size
        self.pricing_url = pricing_url.rstrip("/") if pricing_url else ""
        self.seller_id = seller_id
        self.retry = RetryPolicy(
            attempts=max_attempts, base=backoff, cap=max_wait, jitter=(0.5, 1.0), retry_after_cap=max_wait
        )
        self._sleep = sleep
        self._clock = clock
        self._owns_client = owns_client
        self.count = 0
        self.errors = 0
        self.complete = False
        self.requests = 0
        self.retries = 0

    def __repr__(self) -> str:
        return f"VtexSource({str(self.client.base_url)!r}, trade_policy={self.trade_policy!r})"

    def __iter__(self) -> Iterator[SourceItem]:
        return self.records()

    def __enter__(self) -> VtexSource:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client, if it was built for this source (``vtex_records`` without a client)."""
        if self._owns_client:
            self.client.close()

    def records(self) -> Iterator[SourceItem]:
        """Every SKU of the trade policy, good and malformed alike; can be called again to re-read."""
        self.count = self.errors = self.requests = self.retries = 0
        self.complete = False
        with closing(FirstSeen()) as first_seen:
            yield from self._pages(first_seen)

    def _pages(self, first_seen: FirstSeen) -> Iterator[SourceItem]:
        """The listing page by page; a SKU listed twice is fetched once and reported the second time."""
        previous: list[str] | None = None
        for page in itertools.count(1):
            try:
                ids = self._sku_ids(page)
            except _CallFailed as failure:
                yield self._tally(self._stopped(page, str(failure)))
                return
            if not ids:
                break
            if ids == previous:  # a server that ignores `page` would otherwise loop forever
                yield self._tally(self._stopped(page, "VTEX answered the same ids as the page before"))
                return
            promotions = self._promotions(ids)
            for sku_id in ids:
                if (first := first_seen.first(sku_id, page)) is not None:
                    # Paging drifts when the catalog changes under it; the SKU was read already.
                    reason = f"duplicate: VTEX listed it on page {first[0]} already; a SKU is read once"
                    yield self._tally(MalformedRecord(sku_id, [("sku.id", reason)]))
                    continue
                yield self._tally(self._record(sku_id, promotions))
            previous = ids
        self.complete = True

    def records_for(self, sku_ids: Sequence[str]) -> Iterator[SourceItem]:
        """Just these SKUs (the lines of incoming orders), without listing the trade policy."""
        ids = [str(sku_id) for sku_id in sku_ids]
        for start in range(0, len(ids), self.page_size):
            page = ids[start : start + self.page_size]
            promotions = self._promotions(page)
            for sku_id in page:
                yield self._tally(self._record(sku_id, promotions))

    # -- one page, one SKU -------------------------------------------------------------------

    def _sku_ids(self, page: int) -> list[str]:
        """One page of the trade policy's SKU ids; the listing ends at the first empty page.

        Not at the first short page: a server that caps the page size below the one asked
        would end the listing early and silently drop SKUs.
        """
        params: dict[str, str | int] = {
            "sc": self.trade_policy,
            "page": page,
            "pageSize": self.page_size,
            "onlyAssigned": "true",
        }
        answer = self._get(_LIST_SKUS, params)
        if not isinstance(answer, list) or not all(_is_id(item) for item in answer):
            raise _CallFailed(f"GET {_LIST_SKUS} did not answer a list of SKU ids")
        return [str(item) for item in answer]

    def _promotions(self, ids: Sequence[str]) -> dict[str, Decimal] | _CallFailed:
        """Per-unit promotional prices of a page (one simulation), or why they are unknown."""
        body = {"items": [{"id": sku_id, "quantity": 1, "seller": self.seller_id} for sku_id in ids]}
        try:
            return promotional_prices(self._call("POST", _SIMULATION, {"sc": self.trade_policy}, body))
        except _CallFailed as failure:
            return failure
        except VtexShapeError as error:
            return _CallFailed(error.message)

    def _record(self, sku_id: str, promotions: dict[str, Decimal] | _CallFailed) -> SourceItem:
        quoted, policy = quote(sku_id, safe=""), quote(self.trade_policy, safe="")
        try:
            context = self._get(_SKU_CONTEXT.format(sku=quoted), {"sc": self.trade_policy})
            prices = self._get(self.pricing_url + _PRICE.format(sku=quoted))
            computed = self._get(self.pricing_url + _COMPUTED_PRICE.format(sku=quoted, trade_policy=policy))
            inventory = self._get(_INVENTORY.format(sku=quoted))
        except _CallFailed as failure:
            return MalformedRecord(sku_id, [("", str(failure))], unavailable=failure.unavailable)
        if isinstance(promotions, _CallFailed):
            # Leaving it null would read as "the promotion ended" and be sent as such.
            reason = f"the checkout simulation of its page failed: {promotions}"
            return MalformedRecord(
                sku_id, [("price.promotional", reason)], unavailable=promotions.unavailable
            )
        try:
            for name, answer in (
                ("SKU context", context),
                ("price", prices),
                ("computed price", computed),
                ("inventory", inventory),
            ):
                if not isinstance(answer, Mapping):
                    raise VtexShapeError("", f"the VTEX {name} answer is not a JSON object")
            if str(context.get("Id")) != sku_id:
                raise VtexShapeError("sku.id", f"VTEX answered SKU {context.get('Id')!r} for SKU {sku_id}")
            data = vtex_record(
                context, prices, computed, inventory, promotions.get(sku_id), self.trade_policy, self._clock()
            )
        except VtexShapeError as error:
            return MalformedRecord(sku_id, [(error.field, error.message)])
        try:
            return CatalogRecord.parse(data)
        except MalformedRecord as error:
            return error if error.sku_id else MalformedRecord(sku_id, error.errors)

    def _stopped(self, page: int, reason: str) -> MalformedRecord:
        message = (
            f"listing the SKUs of trade policy {self.trade_policy} stopped at page {page}: {reason}; "
            "the SKUs after it were not read"
        )
        return MalformedRecord(None, [("", message)])

    def _tally(self, item: SourceItem) -> SourceItem:
        if isinstance(item, MalformedRecord):
            self.errors += 1
        else:
            self.count += 1
        return item

    # -- HTTP --------------------------------------------------------------------------------

    def _get(self, url: str, params: Mapping[str, str | int] | None = None) -> Any:
        return self._call("GET", url, params)

    def _call(self, method: str, url: str, params: Mapping[str, str | int] | None, body: Any = None) -> Any:
        """The decoded JSON answer (numbers as Decimal), retrying what a retry can fix."""
        path = httpx.URL(url).path

        def attempt(n: int) -> httpx.Response:
            self.requests += 1
            response = self.client.request(method, url, params=params, json=body)
            status = response.status_code
            if status in (401, 403):
                raise VtexAccessError(self._refused(method, path, response), status)
            if 400 <= status < 500 and status != 429:
                reason = f"{method} {path} answered {status} {response.reason_phrase}{_detail(response)}"
                raise _CallFailed(self._scrub(reason))
            return response

        try:
            response = self.retry.run(attempt, sleep=self._sleep, on_retry=self._count_retry)
        except httpx.TransportError as error:
            problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        else:
            status = response.status_code
            if not self.retry.retryable(response):
                return _json_answer(method, path, response)
            problem = f"{status} {response.reason_phrase}{_detail(response)}"
        raise _CallFailed(
            self._scrub(f"{method} {path} failed {self.retry.attempts} times, last with {problem}"),
            unavailable=True,
        )

    def _count_retry(self, attempt: int, wait: float) -> None:
        self.retries += 1

    def _refused(self, method: str, path: str, response: httpx.Response) -> str:
        status = response.status_code
        if status == 401:
            advice = "check the AppKey and AppToken it reads (source.app_key_env, and source.app_token_env"
            advice += " or source.app_token_file)"
        else:
            resource = next((r for part, r in _RESOURCES.items() if part in path), "access to this API")
            advice = f"the AppKey's role must grant {resource}"
        message = (
            f"VTEX refused {method} {path} ({status} {response.reason_phrase}{_detail(response)}): {advice}"
        )
        return self._scrub(message)

    def _scrub(self, text: str) -> str:
        """The text without any registered secret, nor the AppToken this client sends (registered
        here, so that it is masked whole, in every encoded form, even when a shorter secret it
        contains is registered too)."""
        token = self.client.headers.get("X-VTEX-API-AppToken")
        if token:
            register(token)
        return redact(text)


def vtex_records(
    source_config: SourceConfig,
    project_folder: Path,
    client: httpx.Client | None = None,
    *,
    trade_policy: str = "1",
    page_size: int = DEFAULT_PAGE_SIZE,
) -> VtexSource:
    """The VTEX source a project config describes.

    Builds the client: base URL ``https://{account}.{environment}.com.br`` (or the config's
    ``base_url``, which the sandbox sets and which then serves the Pricing API too), the
    AppKey from the variable ``app_key_env``, the AppToken from the file ``app_token_file``
    (relative to the project folder) or the variable ``app_token_env``. The token is
    registered with the redactor, so no error or log line can show it.

    ``client``, when given (a test, the sandbox), is used for its transport and base URL;
    only the credential headers are set on it, so the config's secrets are still the ones read.
    """
    if source_config.type != "vtex":
        raise ConfigError(f"source type '{source_config.type}' is not a VTEX source")
    base_url, credentials = vtex_account(source_config, project_folder, "source")
    account = source_config.account
    pricing_url = None if source_config.base_url else f"https://api.vtex.com/{account}"
    if client is not None:
        client.headers.update(credentials)
        return VtexSource(client, trade_policy, page_size, pricing_url=pricing_url)
    built = httpx.Client(
        base_url=base_url,
        headers={**credentials, "Accept": "application/json", "Content-Type": "application/json"},
        timeout=httpx.Timeout(30.0, connect=10.0),
    )
    return VtexSource(built, trade_policy, page_size, pricing_url=pricing_url, owns_client=True)


def vtex_account(config: VtexAccount, project_folder: Path, where: str) -> tuple[str, dict[str, str]]:
    """The base URL and the AppKey/AppToken headers a VTEX account config names.

    The base URL is ``https://{account}.{environment}.com.br`` or the config's ``base_url``
    (the sandbox); the AppKey comes from ``app_key_file`` or the variable ``app_key_env``, the
    AppToken from ``app_token_file`` or ``app_token_env``, and is registered with the
    redactor, so no error or log line can show it. ``where`` names the config section in
    messages ("source", "orders.vtex").
    """
    account = config.account
    if not account and not config.base_url:
        raise ConfigError(f"{where}.account is required for VTEX (or {where}.base_url for a sandbox)")
    if config.app_key_file:
        app_key = read_secret(f"file:{config.app_key_file}", project_folder)
    else:
        app_key = _app_key(config.app_key_env)
    if config.app_token_file:
        app_token = read_secret(f"file:{config.app_token_file}", project_folder)
    else:
        app_token = read_secret(f"env:{config.app_token_env}")
    base_url = config.base_url or f"https://{account}.{config.environment}.com.br"
    return base_url, {"X-VTEX-API-AppKey": app_key, "X-VTEX-API-AppToken": app_token}


def _app_key(variable: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ConfigError(f"the VTEX AppKey is not set: export {variable} (source.app_key_env)")
    return check_header_value(f"env:{variable}", value)


def _is_id(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value != ""
    )


def _json_answer(method: str, path: str, response: httpx.Response) -> Any:
    """A successful answer's JSON (numbers as Decimal); :class:`_CallFailed` when it has none."""
    status = response.status_code
    try:
        return read_json(response.content)
    except JsonLimitError as error:
        raise _CallFailed(f"{method} {path} answered {status} with a body past a limit: {error}") from None
    except ValueError:
        raise _CallFailed(f"{method} {path} answered {status} with a body that is not JSON") from None


def _detail(response: httpx.Response) -> str:
    """VTEX's own error message, shortened, for a failure report ("" when it gave none)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
    else:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            text = str(error.get("message") or "")
        elif isinstance(body, dict):
            text = str(body.get("Message") or body.get("message") or error or "")
        else:
            text = str(body)
    text = " ".join(text.split())
    return f": {text[:200]}" if text else ""


class VtexCatalogSource(Source):
    """VTEX as a catalog source and the account orders are placed in (``tradepost.sources``)."""

    name = "vtex"

    def records(self, config: SourceConfig, folder: Path, trade_policy: str = "1") -> VtexSource:
        return vtex_records(config, folder, trade_policy=trade_policy)

    def account(self, config: VtexAccount, folder: Path, where: str) -> tuple[str, dict[str, str]]:
        return vtex_account(config, folder, where)

    def placement(self, client: httpx.AsyncClient, keys: Mapping[str, str], **options: Any) -> VtexOrders:
        return VtexOrders(client, keys["X-VTEX-API-AppKey"], keys["X-VTEX-API-AppToken"], **options)
