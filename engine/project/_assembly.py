"""Putting a project together for one marketplace: its compiled rules, its connector, its catalog.

The CLI, the benchmarks and the tests all go through here, so a plan in a
test is built exactly as `tradepost plan` builds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import httpx

from engine._diagnostics import TradepostError
from engine.connectors._contract import Connector
from engine.connectors._http import AiohttpTransport, Client, Observed
from engine.connectors._registry import connector_class
from engine.connectors._registry import source as source_plugin
from engine.connectors._source import Catalogs, RecordStream
from engine.model._catalog import MalformedRecord
from engine.project._config import ConfigError, Project
from engine.project._rulecheck import compile_rules
from engine.rules._compiled import CompiledRules
from engine.state._store import StateStore
from engine.sync._plan import Planner
from engine.sync._source import FileSource, Skipped, SourceItem


@dataclass
class MarketplaceRun:
    """Everything needed to plan (and later apply) one marketplace."""

    name: str
    compiled: CompiledRules
    connector: Connector

    def planner(self, state: StateStore | None) -> Planner:
        return Planner(self.compiled, self.connector, state)

    @property
    def trade_policy(self) -> str:
        return self.compiled.rules.trade_policy


def open_marketplace(project: Project, name: str) -> MarketplaceRun:
    """Compile the marketplace's rule file (RuleError on mistakes) and build its connector."""
    compiled = compile_rules(project.rules_path(name))
    options = {**compiled.rules.options, **project.marketplace(name).options}
    connector = connector_class(compiled.marketplace)(options)
    return MarketplaceRun(name, compiled, connector)


class CatalogUnreadableError(TradepostError):
    """Not one record of the catalog could be read: nothing can be planned from it.

    Going on would plan every SKU as invalid (or, with no record at all, every listing as a
    delete) and exit as if all were well; a scheduler must see a failure instead.
    """


class Catalog:
    """A source's stream that fails, rather than ends quietly, when nothing could be read of it.

    A source reports a catalog it could not read to its end (VTEX's SKU listing kept failing,
    a file broke off) with a last malformed record and ``complete`` false, and goes on with
    what it read. When it read no record at all, that is not a catalog but an outage or a
    refusal, and so is a listing whose every SKU failed because VTEX did not answer
    (``unavailable``): :class:`CatalogUnreadableError` is raised at the end of the stream,
    with the source's own reason. A catalog that is empty, or whose records are all
    malformed data, is still a catalog. Malformed records read before the first good one are held back (up
    to ``hold``), so a plan printed as it streams shows the error alone, not a bogus change.
    """

    def __init__(self, source: FileSource | RecordStream, hold: int = 1000) -> None:
        self.source = source
        self.hold = hold

    def __repr__(self) -> str:
        return f"Catalog({self.source!r})"

    @property
    def complete(self) -> bool:
        return self.source.complete

    def __iter__(self) -> Iterator[SourceItem]:
        return cast(Iterator[SourceItem], self._checked(iter(self.source)))  # records(): no Skipped

    def items(self) -> Iterator[SourceItem | Skipped]:
        """The catalog with the lines a plan skips as unchanged in their place (see
        :meth:`FileSource.items`): what the planner reads."""
        source = self.source
        return self._checked(source.items() if isinstance(source, FileSource) else iter(source))

    def _checked(self, items: Iterator[SourceItem | Skipped]) -> Iterator[SourceItem | Skipped]:
        held: list[MalformedRecord] = []
        holding = True
        last: MalformedRecord | None = None
        outage = True  # every record so far failed because the source did not answer
        for item in items:
            if isinstance(item, MalformedRecord):
                last, outage = item, outage and item.unavailable
            else:
                outage = False
            if holding and isinstance(item, MalformedRecord) and len(held) < self.hold:
                held.append(item)
                continue
            holding = False
            yield from held
            held = []
            yield item
        if self.source.count == 0 and (not self.source.complete or (last is not None and outage)):
            raise CatalogUnreadableError(f"the catalog could not be read: {_why(last)}; nothing was planned")
        yield from held


def _why(last: MalformedRecord | None) -> str:
    """The source's last word: where and why reading stopped."""
    if last is None:
        return "the source ended before its first record"
    return "; ".join(f"{path}: {message}" if path else message for path, message in last.errors)


def catalog_records(project: Project, trade_policy: str = "1") -> Catalog:
    """The project's catalog as a stream of records (and malformed-record errors, in place).

    The source is wrapped, not consumed, so the planner can see whether it was read to its
    end (``complete``) before it plans any delete, and a catalog of which not one record could
    be read raises :class:`CatalogUnreadableError` instead of becoming an empty plan. From
    VTEX, the records are those of the rule file's trade policy, priced in it; a file holds
    one trade policy's view. A source that cannot be opened at all raises at once
    (SourceError, VtexAccessError: both TradepostErrors).
    """
    source = project.config.source
    if source.type != "file":
        return Catalog(source_plugin(source.type).records(source, project.folder, trade_policy))
    path = project.catalog_path
    if path is None:
        raise ConfigError(f"{project.path}: source.path is required for a file source")
    return Catalog(FileSource(path))


CONNECTIONS = 64
"""Connections a marketplace client keeps at most (an executor sends at most 16 requests at once)."""
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
"""How long a marketplace (or VTEX order) request may take: 10 s to connect, 30 s for the rest."""


def marketplace_client(
    project: Project, run: MarketplaceRun, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The client of ``run``'s marketplace: the config's base URL (else the connector's), over
    aiohttp with the process's TLS context (half the CPU per request of httpx's own transport),
    or over ``transport`` when given (a stand-in in process)."""
    base_url = project.marketplace(run.name).base_url or type(run.connector).base_url
    sent_by = Observed(transport or AiohttpTransport(CONNECTIONS), run.name)  # counted: /metrics
    return Client(base_url=base_url, transport=sent_by, timeout=TIMEOUT)


def open_state(project: Project) -> StateStore:
    """The project's state store: its SQLite file, or the PostgreSQL database its URL names (a
    password given as ``file:PATH`` is relative to the config's folder)."""
    if project.config.state_password_inline:
        raise ConfigError(
            f"`state:` in {project.path} holds a password; name where it is instead "
            "(postgresql://USER:env:NAME@HOST/DATABASE, or file:PATH), or leave it out and set PGPASSWORD "
            "or ~/.pgpass"
        )
    return StateStore(project.state_url, secrets_base=project.folder)


class CatalogReads:
    """The catalogs of one run over several marketplaces (see :func:`catalog_reads`)."""

    def __init__(self, project: Project, catalogs: Catalogs | None) -> None:
        self.project = project
        self._catalogs = catalogs

    def records(self, trade_policy: str = "1") -> Catalog:
        """One trade policy's catalog, as :func:`catalog_records` gives it."""
        if self._catalogs is None:
            return catalog_records(self.project, trade_policy)
        return Catalog(self._catalogs.records(trade_policy))


@contextmanager
def catalog_reads(project: Project) -> Iterator[CatalogReads]:
    """The project's catalogs for one run that reads several trade policies, one after another.

    A source that can share reads across trade policies does (VTEX reads the SKU context,
    prices and inventory once for every marketplace, and each trade policy's computed price on
    its own); what was shared is released when the block ends. A file source reads its file
    each time, as :func:`catalog_records` does.
    """
    source = project.config.source
    catalogs = source_plugin(source.type).catalogs(source, project.folder) if source.type != "file" else None
    try:
        yield CatalogReads(project, catalogs)
    finally:
        if catalogs is not None:
            catalogs.close()
