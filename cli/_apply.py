"""`tradepost apply`: send a plan (saved, or made now) to the marketplaces."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
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
    PlannedApply,
    apply_records,
    check_not_stale,
    fingerprint_of,
    locked,
    open_state,
    record_full_apply,
)
from engine.sync import (
    EXIT_PARTIAL,
    ApplySummary,
    MassDelete,
    SavedPlan,
    SkuResult,
    check_plan_rules,
    mass_delete,
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
    with ExitStack() as files:
        saved = files.enter_context(SavedPlan(plan_file)) if plan_file else None
        if saved is not None:
            names = _plan_marketplaces(saved.path, saved.marketplaces, project, names, marketplaces)
        out = console(stderr=True)
        summaries: list[ApplySummary] = []
        refused: list[MassDelete] = []
        # Every marketplace's rules are compiled, and a saved plan checked whole (a pass over the
        # file, nothing held), before anything is sent.
        runs = {name: _compile_or_exit(project, name) for name in names}
        if shards is not None:
            sys.exit(apply_in_shards(project, runs, shards=shards, timeout=shard_timeout,
                                     allow_mass_delete=allow_mass_delete, as_json=as_json))  # fmt: skip
        counts: dict[str, Counter[str]] = {}
        if saved is not None:
            for name, run in runs.items():
                check_plan_rules(saved.path, saved.document, name, fingerprint_of(run))
                counts[name] = saved.check(name, run.connector)
        with open_state(project) as state:
            for name in names:
                run = runs[name]
                with locked(state, run.compiled.marketplace):
                    if saved is not None:
                        outcome = _apply_saved(
                            saved, counts[name], run, project, state, allow_mass_delete, as_json
                        )
                    else:
                        outcome = _apply_planned(run, project, state, allow_mass_delete, as_json)
                if isinstance(outcome, MassDelete):
                    refused.append(outcome)
                    if not as_json:
                        out.print(f"[bold]{name}[/bold] [red]{outcome.refusal()}[/red]; nothing was sent")
                    continue
                summaries.append(outcome)
                if not as_json:
                    print_summary(out, name, outcome)
    if as_json:
        documents = [s.to_dict() for s in summaries]
        documents += [{"marketplace": g.marketplace, "mass_delete": g.to_dict()} for g in refused]
        click.echo(dumps({"marketplaces": documents}, indent=2))
    if refused:
        sys.exit(EXIT_REFUSED)
    if any(s.failed for s in summaries):
        sys.exit(EXIT_PARTIAL)


def _plan_marketplaces(
    plan_file: Path, planned: list[str], project: Any, names: list[str], chosen: Sequence[str]
) -> list[str]:
    """The marketplaces of a saved plan to apply: all of the plan's, or those chosen with -m."""
    unknown = [n for n in planned if n not in project.config.marketplaces]
    if unknown and not chosen:
        raise TradepostError(
            f"{plan_file} has changes for {', '.join(unknown)}, not in {project.path}; nothing was sent "
            "(pass -m to apply only some marketplaces of the plan)"
        )
    absent = [n for n in chosen if n not in planned]
    if absent:
        raise TradepostError(
            f"{plan_file} has no changes for {', '.join(absent)} (it has {', '.join(planned)}); "
            "nothing was sent"
        )
    return [n for n in names if n in planned] if chosen else list(planned)


def _apply_saved(
    saved: SavedPlan, counts: Counter[str], run: Any, project: Any, state: Any, allow: bool, quiet: bool
) -> ApplySummary | MassDelete:
    """A saved plan's changes for one marketplace, checked against the state (a pass over the file),
    then sent as they are read again."""
    marketplace = run.compiled.marketplace
    check_not_stale(saved.changes(run.name), state, marketplace)
    live = state.count(marketplace)
    guard = mass_delete(run.name, counts["delete"], live, project.marketplace(run.name).max_delete_share)
    if guard is not None and not allow:
        return guard
    total = counts["create"] + counts["update"] + counts["delete"]
    return _run_with_progress(run, project, state, saved.changes(run.name), total, quiet)


def _apply_planned(run: Any, project: Any, state: Any, allow: bool, quiet: bool) -> ApplySummary | MassDelete:
    """A plan made now, sent as it is planned (or, when its deletes could need consent, once they
    are counted); a full plan all applied is recorded as a reconciliation."""
    planned, guard = PlannedApply.for_apply(run, project, state, allow)
    with planned:
        if guard is not None:
            return guard
        summary = _run_with_progress(run, project, state, planned, planned.total, quiet)
        if planned.full:
            record_full_apply(state, run.name, summary)
    return summary


def _run_with_progress(
    run: Any, project: Any, state: Any, records: Iterable[Any], total: int | None, quiet: bool
) -> ApplySummary:
    """A progress bar on a terminal only: logs and schedulers get the summary, not a redraw stream.

    ``total`` is None for a plan sent as it is made: the bar then counts what was sent, of "?".
    """
    if quiet or not sys.stderr.isatty() or total == 0:
        return asyncio.run(apply_records(run, project, state, records))
    with Progress(
        TextColumn(f"{run.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(run.name, total=total)

        def advance(result: SkuResult) -> None:
            progress.advance(task)

        return asyncio.run(apply_records(run, project, state, records, on_result=advance))
