"""`tradepost state`: look after the state store, the cache of what each marketplace holds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

import click

from cli._plan import _compile_or_exit, _project, config_option
from engine.jsonio import dumps
from engine.orders import AfterSalesStore, OrderStore
from engine.project import open_state, rebuild_state
from engine.state import migrate_state, open_source


@click.group()
def state() -> None:
    """Look after the state store (what Tradepost believes each marketplace holds)."""


@state.command()
@click.option("-m", "--marketplace", "marketplace", required=True, help="The marketplace to read back.")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary (for schedulers).")
def rebuild(marketplace: str, config_path: Path | None, as_json: bool) -> None:
    """Read a marketplace's listings back into the state store.

    For disaster recovery (the state store was lost, truncated or restored from an old copy)
    and for moving a seller whose listings were made elsewhere onto Tradepost. The
    marketplace's rows are replaced in one transaction, under its lock; other marketplaces are
    untouched.

    Each SKU read back is compared with what the rules would send for it now: what matches is
    recorded as planned, so the next plan sends nothing for it; what differs (content, price,
    stock) is recorded as the marketplace shows it (content as a marker no listing hash equals,
    a count the marketplace does not show as -1), so the next plan sends exactly that update.
    A listing whose SKU the catalog does not list is recorded too, so the next plan withdraws
    it. Not compared: Mercado Libre pictures and descriptions, and any field the rules do not
    send. Exit codes: 0 rebuilt, 1 error (nothing written).
    """
    project = _project(config_path)
    project.marketplace(marketplace)  # an unknown name is a clear error before anything runs
    run = _compile_or_exit(project, marketplace)
    with open_state(project) as store:
        summary = asyncio.run(rebuild_state(run, project, store))
    _report(summary, as_json)


@state.command()
@config_option
@click.option(
    "--from",
    "source",
    required=True,
    metavar="SQLITE_FILE",
    help="The SQLite state file to copy from (what `state:` named before).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Empty the target's Tradepost tables first, in the same transaction (a rehearsal migrated earlier).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary (for scripts).")
def migrate(config_path: Path | None, source: str, replace: bool, as_json: bool) -> None:
    """Copy an SQLite state store into the project's state store (PostgreSQL).

    Set `state:` in the config to the PostgreSQL URL first, then give --from the SQLite file it
    named: the target is always the store the next run will use. Every table is copied (listings,
    withdrawn and pending SKUs, per-SKU errors, runs, full passes, orders and their history, the
    notification queue) in one transaction, rows streamed, and every table's row count is compared
    before it commits: the target holds all of it or none. Locks are not copied; a lock still held
    by a live run refuses the migration (stop the schedules and `tradepost serve` first). The source
    is migrated to this Tradepost's schema version first, then only read.

    Refused, nothing written: a target that already holds data (unless --replace), a source that
    is missing, not a Tradepost state store, damaged or of a newer version, a target that cannot be
    reached. Exit codes: 0 copied and verified, 1 error.
    """
    project = _project(config_path)
    with open_state(project) as target, open_source(source) as origin:
        for store in (origin, target):
            OrderStore(store)  # the order tables, on both: they are made on first use
            AfterSalesStore(store)  # and the returns and questions beside them
        migration = migrate_state(origin, target, replace=replace)
    _report(migration, as_json)


class _Summary(Protocol):
    def to_dict(self) -> dict[str, Any]: ...
    def line(self) -> str: ...
    def details(self) -> list[str]: ...


def _report(summary: _Summary, as_json: bool) -> None:
    """A command's summary: one JSON document, or its line and the details indented under it."""
    if as_json:
        click.echo(dumps(summary.to_dict(), indent=2))
        return
    click.echo(summary.line())
    for line in summary.details():
        click.echo(f"  {line}")
