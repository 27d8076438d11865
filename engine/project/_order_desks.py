"""Orders for a project: build each marketplace's :class:`OrderDesk` from ``tradepost.yaml``.

`tradepost orders …` and the end-to-end tests go through here, so a test that
kills a pull or a push proves what a scheduler run does.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from engine.connectors._http import Client, tls_context
from engine.connectors._registry import order_channel_class
from engine.connectors._registry import source as source_plugin
from engine.connectors._source import Source
from engine.model._catalog import CatalogRecord, MalformedRecord
from engine.orders._divergence import prices_from_rules
from engine.orders._flow import OrderDesk, RulePrices, VtexPlacement
from engine.orders._store import OrderStore
from engine.project._apply import credentials_for, persist_rotated
from engine.project._assembly import TIMEOUT, MarketplaceRun, marketplace_client, open_marketplace
from engine.project._config import Project, VtexAccount
from engine.state._store import StateStore
from engine.sync._evaluate import SkuEvaluator
from engine.sync._source import FileSource

__all__ = ["order_desks", "order_marketplaces", "vtex_orders_account"]

_VTEX_READERS = 4
_ORDERS_SOURCE = "vtex"
"""The source type that holds the store's orders: ``orders.vtex`` in the config names its account."""


def order_marketplaces(project: Project, only: Iterable[str] | None = None) -> list[str]:
    """The configured marketplaces that take orders (all named ones when ``only`` is given)."""
    names = project.marketplace_names(list(only) if only else None)
    if only:
        return names
    return [n for n in names if order_channel_class(n) is not None]


def _orders_source() -> Source:
    """The source plug-in whose account orders are placed in (VTEX, the store's own system)."""
    return source_plugin(_ORDERS_SOURCE)


def vtex_orders_account(project: Project) -> tuple[VtexAccount, str] | None:
    """The VTEX account orders are placed in and its config section, or None when none is set."""
    orders = project.config.orders.vtex
    if orders is not None:
        return orders, "orders.vtex"
    if project.config.source.type == "vtex":
        return project.config.source, "source"
    return None


@asynccontextmanager
async def order_desks(
    project: Project,
    state: StateStore,
    names: Iterable[str],
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> AsyncIterator[dict[str, OrderDesk]]:
    """A desk per marketplace, its HTTP clients open; rotated tokens are saved on the way out.

    ``transports`` (tests) maps a marketplace name, or "vtex", to an in-process transport.
    """
    transports = transports or {}
    store = OrderStore(state)
    desks: dict[str, OrderDesk] = {}
    async with AsyncExitStack() as stack:
        vtex_client: httpx.AsyncClient | None = None
        vtex_keys: dict[str, str] = {}
        account = vtex_orders_account(project)
        if account is not None:
            base_url, vtex_keys = _orders_source().account(account[0], project.folder, account[1])
            vtex_client = await stack.enter_async_context(
                Client(
                    base_url=base_url,
                    transport=transports.get("vtex"),
                    timeout=TIMEOUT,
                    headers={"Accept": "application/json"},
                    verify=tls_context(),
                )
            )
        for name in names:
            run = open_marketplace(project, name)
            marketplace = run.compiled.marketplace
            channel_cls = order_channel_class(marketplace)
            channel = None
            if channel_cls is not None:
                credentials = credentials_for(project, name)
                client = await stack.enter_async_context(
                    marketplace_client(project, run, transports.get(name))
                )
                stack.callback(persist_rotated, project, run, credentials)
                channel = channel_cls(
                    run.connector,
                    credentials,
                    client,
                    sku_of=functools.partial(state.sku_of_remote, marketplace),
                    after_auth=functools.partial(persist_rotated, project, run, credentials),
                )
            vtex: VtexPlacement | None = None
            if vtex_client is not None:
                vtex = _orders_source().placement(
                    vtex_client,
                    vtex_keys,
                    affiliate_id=run.compiled.rules.affiliate,
                    sales_channel=run.trade_policy,
                )
            desks[name] = OrderDesk(
                marketplace,
                run.compiled,
                store,
                channel,
                vtex,
                _rule_prices(project, run, state),
                simulate_prices=project.config.orders.simulate_prices,
            )
        yield desks


def _rule_prices(
    project: Project, run: MarketplaceRun, state: StateStore
) -> Callable[[set[str]], RulePrices]:
    """The price the rule file gives each SKU now, as the marketplace offers it.

    The catalog is read for the ordered SKUs and their applied siblings (same product), because a
    marketplace may price a family as one; the SKUs are read directly, never the whole catalog
    from VTEX. A SKU VTEX did not answer for is reported apart, so its orders wait for the next
    pull instead of being held for a person.
    """

    def prices(sku_ids: set[str]) -> RulePrices:
        evaluator = SkuEvaluator(run.compiled, run.connector)
        wanted = state.with_siblings(run.compiled.marketplace, sku_ids)
        records, unreadable = _records(project, run, wanted)
        return RulePrices(prices_from_rules(records, evaluator), unreadable)

    return prices


def _records(
    project: Project, run: MarketplaceRun, sku_ids: set[str]
) -> tuple[list[CatalogRecord], dict[str, str]]:
    """The catalog records of these SKUs, and SKU -> why its record could not be read."""
    source = project.config.source
    if source.type != "file":
        # Four SKUs' calls at a time, each thread with its own client: read one by one, the
        # 4 to 5 calls a SKU needs make VTEX's latency the whole cost of a pull.
        ids = sorted(sku_ids)
        chunks = [ids[start::_VTEX_READERS] for start in range(_VTEX_READERS) if ids[start::_VTEX_READERS]]

        def read(chunk: list[str]) -> list[CatalogRecord | MalformedRecord]:
            with source_plugin(source.type).records(source, project.folder, run.trade_policy) as vtex:
                return list(vtex.records_for(chunk))

        records: list[CatalogRecord] = []
        unreadable: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=_VTEX_READERS) as pool:
            for found in pool.map(read, chunks):
                for item in found:
                    if isinstance(item, CatalogRecord):
                        records.append(item)
                    elif item.sku_id and item.unavailable:  # VTEX did not answer; wrong data is a hold
                        unreadable[item.sku_id] = "; ".join(message for _, message in item.errors)
        return records, unreadable
    path = project.catalog_path
    if path is None:
        return [], {}
    wanted = set(sku_ids)
    matching: list[CatalogRecord] = []
    for record in FileSource(path):
        if isinstance(record, CatalogRecord) and record.sku.id in wanted:
            matching.append(record)
            wanted.discard(record.sku.id)
            if not wanted:
                break
    return matching, {}
