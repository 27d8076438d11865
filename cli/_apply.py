"""`tradepost apply`: send a plan (saved, or made now) to the marketplaces."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli._plan import _compile_or_exit, _project, allow_mass_delete_option, config_option
from cli._render import console
from cli._worker import apply_in_shards, print_summary, shard_timeout_option, shards_option
from engine import TradepostError
from engine.jsonio import dumps
from engine.project import (
    apply_records,
    check_not_stale,
    fingerprint_of,
    locked,
    open_state,
    planned_pass,
    record_full_apply,
)
from engine.sync import (
    EXIT_PARTIAL,
    ApplySummary,
    MassDelete,
    SkuResult,
    check_plan_rules,
    checked_changes,
    mass_delete,
    read_plan,
)

EXIT_REFUSED = 1
"""A marketplace got nothing: its deletes needed --allow-mass-delete."""


@click.command()
@click.argument("plan_file", required=False, type=click.Path(path_type=Path))
@config_option
@click.option(
    "-m", "--marketplace", "marketplaces", multiple=True, help="Only this marketplace (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary (for schedulers).")
@allow_mass_delete_option
@shards_option
@shard_timeout_option
def apply(
    plan_file: Path | None,
    config_path: Path | None,
    marketplaces: Sequence[str],
    as_json: bool,
    allow_mass_delete: bool,
    shards: int | None,
    shard_timeout: float,
) -> None:
    """Send changes to the marketplaces: a saved plan exactly, or a plan made now.

    A saved plan is checked whole before anything is sent, and refused when it is not intact
    (truncated, edited: each change carries a digest, each payload must be the one tradepost
    builds from its listing), when the rules changed since it was made, or when the state moved
    on (re-plan); a run that was interrupted resumes without resending what already succeeded.
    A marketplace whose plan deletes more than its max_delete_share of its live listings
    (default 10%) gets no change at all unless --allow-mass-delete is given. Exit codes: 0 all
    applied, 1 error (a marketplace refused included), 3 some changes failed.

    --shards N (PostgreSQL state) plans here and hands the changes, in N shards, to running
    `tradepost worker` processes, then prints the merged summary; exit 2 on an SQLite state.
    """
    if shards is not None and plan_file is not None:
        raise click.UsageError("--shards plans now; it does not send a saved plan")
    project = _project(config_path)
    names = project.marketplace_names(list(marketplaces))
    document = read_plan(plan_file) if plan_file else None
    if document is not None and plan_file is not None:
        unknown = [n for n in document["marketplaces"] if n not in project.config.marketplaces]
        if unknown and not marketplaces:
            raise TradepostError(
                f"{plan_file} has changes for {', '.join(unknown)}, not in {project.path}; nothing was sent "
                "(pass -m to apply only some marketplaces of the plan)"
            )
        absent = [n for n in marketplaces if n not in document["marketplaces"]]
        if absent:
            raise TradepostError(
                f"{plan_file} has no changes for {', '.join(absent)} (it has "
                f"{', '.join(document['marketplaces'])}); nothing was sent"
            )
        names = (
            [n for n in names if n in document["marketplaces"]]
            if marketplaces
            else list(document["marketplaces"])
        )
    out = console(stderr=True)
    summaries: list[ApplySummary] = []
    refused: list[MassDelete] = []
    # Every marketplace's rules are compiled, and a saved plan checked whole, before anything is sent.
    runs = {name: _compile_or_exit(project, name) for name in names}
    if shards is not None:
        sys.exit(apply_in_shards(project, runs, shards=shards, timeout=shard_timeout,
                                 allow_mass_delete=allow_mass_delete, as_json=as_json))  # fmt: skip
    saved: dict[str, list[dict[str, Any]]] = {}
    if document is not None and plan_file is not None:
        for name, run in runs.items():
            check_plan_rules(plan_file, document, name, fingerprint_of(run))
            saved[name] = checked_changes(plan_file, document, name, run.connector)
    with open_state(project) as state:
        for name in names:
            run = runs[name]
            with locked(state, run.compiled.marketplace):
                full = False
                if document is not None:
                    records = saved[name]
                    check_not_stale(
                        [r for r in records if r["op"] != "invalid"], state, run.compiled.marketplace
                    )
                else:
                    records, full = planned_pass(run, project, state)
                sendable = [r for r in records if r["op"] in ("create", "update", "delete")]
                deletes = sum(1 for r in sendable if r["op"] == "delete")
                live = state.count(run.compiled.marketplace)
                guard = mass_delete(name, deletes, live, project.marketplace(name).max_delete_share)
                if guard is not None and not allow_mass_delete:
                    refused.append(guard)
                    if not as_json:
                        out.print(f"[bold]{name}[/bold] [red]{guard.refusal()}[/red]; nothing was sent")
                    continue
                summary = _run_with_progress(run, project, state, sendable, name, as_json)
                if full:
                    record_full_apply(state, name, summary)
            summaries.append(summary)
            if not as_json:
                print_summary(out, name, summary)
    if as_json:
        documents = [s.to_dict() for s in summaries]
        documents += [{"marketplace": g.marketplace, "mass_delete": g.to_dict()} for g in refused]
        click.echo(dumps({"marketplaces": documents}, indent=2))
    if refused:
        sys.exit(EXIT_REFUSED)
    if any(s.failed for s in summaries):
        sys.exit(EXIT_PARTIAL)


def _run_with_progress(
    run: Any, project: Any, state: Any, records: list[dict[str, Any]], name: str, quiet: bool
) -> ApplySummary:
    """A progress bar on a terminal only: logs and schedulers get the summary, not a redraw stream."""
    if quiet or not sys.stderr.isatty() or not records:
        return asyncio.run(apply_records(run, project, state, records))
    with Progress(
        TextColumn(f"{name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(name, total=len(records))

        def advance(result: SkuResult) -> None:
            progress.advance(task)

        return asyncio.run(apply_records(run, project, state, records, on_result=advance))
