"""`tradepost apply`: send a plan (saved, or made now) to the marketplaces."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli._plan import _compile_or_exit, _project, config_option
from cli._render import console
from engine._apply import EXIT_PARTIAL, ApplySummary, SkuResult
from engine._applyrun import apply_records, check_not_stale, locked, planned_records
from engine._jsonio import dumps
from engine._planfile import read_plan
from engine._run import open_state
from engine._secrets import redact


@click.command()
@click.argument("plan_file", required=False, type=click.Path(path_type=Path))
@config_option
@click.option(
    "-m", "--marketplace", "marketplaces", multiple=True, help="Only this marketplace (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary (for schedulers).")
def apply(
    plan_file: Path | None, config_path: Path | None, marketplaces: Sequence[str], as_json: bool
) -> None:
    """Send changes to the marketplaces: a saved plan exactly, or a plan made now.

    A saved plan is refused when the state moved on since it was made (re-plan); a run that
    was interrupted resumes without resending what already succeeded. Exit codes: 0 all
    applied, 1 error, 3 some changes failed.
    """
    project = _project(config_path)
    names = project.marketplace_names(list(marketplaces))
    document = read_plan(plan_file) if plan_file else None
    if document is not None:
        names = (
            [n for n in names if n in document["marketplaces"]]
            if marketplaces
            else [n for n in document["marketplaces"] if n in project.config.marketplaces]
        )
    out = console(stderr=True)
    summaries: list[ApplySummary] = []
    with open_state(project) as state:
        for name in names:
            run = _compile_or_exit(project, name)
            with locked(state, run.compiled.marketplace):
                if document is not None:
                    records = list(document["marketplaces"][name]["changes"])
                    check_not_stale(
                        [r for r in records if r["op"] != "invalid"], state, run.compiled.marketplace
                    )
                else:
                    records = planned_records(run, project, state)
                sendable = [r for r in records if r["op"] in ("create", "update", "delete")]
                summary = _run_with_progress(run, project, state, sendable, name, as_json)
            summaries.append(summary)
            if not as_json:
                out.print(f"[bold]{name}[/bold] {summary.line()}")
                for failure in summary.failures[:50]:
                    out.print(
                        f"  [red]failed[/red] {escape(failure.sku_id)} ({failure.op}): "
                        f"{escape(redact(failure.error or ''))}",
                        highlight=False,
                    )
                if len(summary.failures) > 50:
                    out.print(f"  … {len(summary.failures) - 50} more failures (--json lists all)")
    if as_json:
        click.echo(dumps({"marketplaces": [s.to_dict() for s in summaries]}, indent=2))
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
