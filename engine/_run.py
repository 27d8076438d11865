"""Putting a project together for one marketplace: its compiled rules, its connector, its catalog.

The CLI, the benchmarks and the tests all go through here, so a plan in a
test is built exactly as `tradepost plan` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine._check import compile_rules
from engine._compiler import CompiledRules
from engine._config import ConfigError, Project
from engine._plan import Planner
from engine._source import FileSource
from engine._state import StateStore
from marketplaces import Connector, connector_class
from marketplaces.vtex import VtexSource, vtex_records


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


def catalog_records(project: Project, trade_policy: str = "1") -> FileSource | VtexSource:
    """The project's catalog as a stream of records (and malformed-record errors, in place).

    The source is returned itself, not a generator over it, so the planner can see whether it
    was read to its end (``complete``) before it plans any delete. From VTEX, the records are
    those of the rule file's trade policy, priced in it; a file holds one trade policy's view.
    """
    source = project.config.source
    if source.type == "vtex":
        return vtex_records(source, project.folder, trade_policy=trade_policy)
    path = project.catalog_path
    if path is None:
        raise ConfigError(f"{project.path}: source.path is required for a file source")
    return FileSource(path)


def open_state(project: Project) -> StateStore:
    return StateStore(project.state_url)
