"""What a catalog source plug-in is (the ``tradepost.sources`` entry points).

The project config names its source by type (``source.type: vtex``); the engine finds the
plug-in of that name in the registry and never imports it. A source hands the planner a
stream of records that says whether it was read to its end (so no delete is planned from a
half-read catalog) and, for orders, the account and the placement client orders go into.

The whole contract is here, below the layers that use it: the settings a source receives
(:class:`SourceConfig`, :class:`VtexAccount`: the ``source:`` and ``orders.vtex:`` sections of
``tradepost.yaml``, which :mod:`engine.project` reads and re-exports) and what the order desk
needs of its placement (:class:`VtexPlacement`, re-exported by :mod:`engine.orders`).

A source may be told what changed of the SKUs it is asked for (:class:`Changed`, from a change
notification): a hint of where to look again, which lets a source that keeps its last answers
re-read only those. Without the hint, or for a SKU it does not cover, everything is read; a
source that keeps nothing (a file) reads everything anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from enum import IntFlag
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from engine.connectors._orderchannel import Fulfilment
from engine.model._catalog import SourceItem
from engine.model._order import Order


class Changed(IntFlag):
    """What changed of a SKU, as a change notification says. Flags only say where to look: the
    values are always re-read. No flag, or a flag a source does not know, means "anything"."""

    PRICE = 1
    STOCK = 2
    CATALOG = 4
    REMOVED = 8
    """Removed from the trade policy, or deactivated: the reader decides whether it is still sold."""


class RecordStream(Protocol):
    """Records read from a source, in order, with a tally: ``complete`` once read to the end."""

    @property
    def complete(self) -> bool: ...

    @property
    def count(self) -> int: ...

    def __iter__(self) -> Iterator[SourceItem]: ...

    def records_for(
        self, sku_ids: Sequence[str], changed: Mapping[str, Changed] | None = None
    ) -> Iterator[SourceItem]:
        """The records of these SKUs only (an order's prices, notified changes), read on demand;
        ``changed`` hints what changed of each (see :class:`Changed`): everything when absent."""
        ...

    def __enter__(self) -> RecordStream: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...


class Source:
    """Base of a catalog source plug-in: the catalog it streams and the account orders go into."""

    name: ClassVar[str] = ""

    def records(self, config: SourceConfig, folder: Path, trade_policy: str = "1") -> RecordStream:
        """The catalog as priced in ``trade_policy``; raises a TradepostError when it cannot open."""
        raise NotImplementedError

    def catalogs(self, config: SourceConfig, folder: Path) -> Catalogs:
        """The catalogs of one run's trade policies; a source that can share reads across them
        (VTEX: what does not depend on the trade policy) overrides it."""
        return Catalogs(self, config, folder)

    def account(self, config: VtexAccount, folder: Path, where: str) -> tuple[str, dict[str, str]]:
        """The base URL and the authenticating headers of the account in ``config`` (``where``
        names its config section in messages)."""
        raise NotImplementedError

    def placement(self, client: httpx.AsyncClient, keys: Mapping[str, str], **options: Any) -> VtexPlacement:
        """The client orders are placed in (``options``: affiliate_id, sales_channel)."""
        raise NotImplementedError


class Catalogs:
    """Every trade policy's catalog for one run (``records(trade_policy)``, in any order, each
    read like :meth:`Source.records`), closed at the end of the run. This base reads each
    trade policy on its own."""

    def __init__(self, source: Source, config: SourceConfig, folder: Path) -> None:
        self.source, self.config, self.folder = source, config, folder

    def records(self, trade_policy: str) -> RecordStream:
        return self.source.records(self.config, self.folder, trade_policy)

    def records_for(
        self,
        trade_policies: Sequence[str],
        sku_ids: Sequence[str],
        changed: Mapping[str, Changed] | None = None,
    ) -> dict[str, list[SourceItem]]:
        """These SKUs' records in each trade policy (:meth:`RecordStream.records_for`); a source
        that shares reads across trade policies reads what does not depend on one only once."""
        self.new_batch()
        return {policy: self.records_in(policy, sku_ids, changed) for policy in trade_policies}

    def new_batch(self) -> None:
        """A :meth:`records_for` begins: a source that keeps its answers between batches (VTEX,
        for a sync worker) reuses them in this one only where ``changed`` allows."""

    def records_in(
        self, trade_policy: str, sku_ids: Sequence[str], changed: Mapping[str, Changed] | None
    ) -> list[SourceItem]:
        """One trade policy's part of :meth:`records_for`: here from a stream opened for it."""
        with self.records(trade_policy) as stream:
            return list(stream.records_for(sku_ids, changed))

    def close(self) -> None:
        """Release what the run's reads shared (nothing here)."""


class VtexAccount(BaseModel):
    """A VTEX account and where its AppKey and AppToken are (never the secrets themselves)."""

    model_config = ConfigDict(extra="forbid")

    account: str | None = Field(None, description="VTEX account name.")
    environment: str = Field("vtexcommercestable", description="VTEX environment host part.")
    base_url: str | None = Field(None, description="Override the VTEX base URL (the sandbox uses this).")
    app_key_env: str = Field("VTEX_APP_KEY", description="Environment variable holding the AppKey.")
    app_key_file: str | None = Field(None, description="File holding the AppKey, instead of the variable.")
    app_token_env: str = Field("VTEX_APP_TOKEN", description="Environment variable holding the AppToken.")
    app_token_file: str | None = Field(
        None, description="File holding the AppToken, instead of the variable."
    )


class SourceConfig(VtexAccount):
    """The catalog source: a file (JSON Lines or a JSON array, optionally gzipped) or the VTEX API."""

    type: Literal["file", "vtex"] = "file"
    path: str | None = Field(None, description="Catalog file, relative to the config (type: file).")
    concurrency: int = Field(
        64,
        ge=1,
        le=256,
        description="Requests to VTEX in flight at once (type: vtex); each API is still paced.",
    )


class _Placed(Protocol):
    @property
    def vtex_order_id(self) -> str: ...
    @property
    def created(self) -> bool: ...


class _VtexState(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def cancelled(self) -> bool: ...
    @property
    def cancel_reason(self) -> str | None: ...
    @property
    def fulfilments(self) -> tuple[Fulfilment, ...]: ...


class VtexPlacement(Protocol):
    """What the desk needs from VTEX (the ``placement`` of the registered source)."""

    async def simulate(self, order: Order) -> Mapping[str, Any]: ...
    async def place(self, order: Order) -> _Placed: ...
    async def authorize_dispatch(self, vtex_order_id: str, marketplace_order_id: str) -> None: ...
    async def get(self, vtex_order_id: str) -> _VtexState: ...
    async def cancel(self, vtex_order_id: str, reason: str) -> None: ...
