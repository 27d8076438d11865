"""What a catalog source plug-in is (the ``tradepost.sources`` entry points).

The project config names its source by type (``source.type: vtex``); the engine finds the
plug-in of that name in the registry and never imports it. A source hands the planner a
stream of records that says whether it was read to its end (so no delete is planned from a
half-read catalog) and, for orders, the account and the placement client orders go into.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx

if TYPE_CHECKING:
    from engine.orders._flow import VtexPlacement
    from engine.project._config import SourceConfig, VtexAccount
    from engine.sync._source import SourceItem


class RecordStream(Protocol):
    """Records read from a source, in order, with a tally: ``complete`` once read to the end."""

    @property
    def complete(self) -> bool: ...

    @property
    def count(self) -> int: ...

    def __iter__(self) -> Iterator[SourceItem]: ...

    def records_for(self, sku_ids: Sequence[str]) -> Iterator[SourceItem]:
        """The records of these SKUs only (an order's prices), read on demand."""
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

    def account(self, config: VtexAccount, folder: Path, where: str) -> tuple[str, dict[str, str]]:
        """The base URL and the authenticating headers of the account in ``config`` (``where``
        names its config section in messages)."""
        raise NotImplementedError

    def placement(self, client: httpx.AsyncClient, keys: Mapping[str, str], **options: Any) -> VtexPlacement:
        """The client orders are placed in (``options``: affiliate_id, sales_channel)."""
        raise NotImplementedError
