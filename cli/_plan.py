"""`tradepost plan` and `tradepost explain`: what would be sent, and why."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cli._output import check_writable
from cli._render import console, print_plain, render_diagnostics
from engine import RuleError
from engine.catalog import CatalogRecord, MalformedRecord
from engine.jsonio import dumps
from engine.project import (
    MarketplaceRun,
    Project,
    catalog_reads,
    catalog_records,
    fingerprint_of,
    load_project,
    open_marketplace,
    open_state,
)
from engine.secrets import redact
from engine.state import NotificationQueue, StateStore
from engine.sync import Change, MassDelete, PlanSummary, PlanWriter, change_record, mass_delete

EXIT_CHANGES = 2
TABLE_LIMIT = 50

allow_mass_delete_option = click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="Consent to deleting more than a marketplace's max_delete_share (default 10%) of its live listings.",
)

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Project config (default: ./tradepost.yaml or $TRADEPOST_CONFIG).",
)


def _project(config_path: Path | None) -> Project:
    try:
        return load_project(config_path)
    except RuleError as exc:
        render_diagnostics(exc.diagnostics)
        sys.exit(1)


def _compile_or_exit(project: Project, name: str) -> Any:
    try:
        return open_marketplace(project, name)
    except RuleError as exc:
        render_diagnostics(exc.diagnostics)
        click.echo(
            f"{project.rules_path(name)}: {len(exc.diagnostics)} problem(s); run `tradepost check`", err=True
        )
        sys.exit(1)


@click.command()
@config_option
@click.option(
    "-m", "--marketplace", "marketplaces", multiple=True, help="Only this marketplace (repeatable)."
)
@click.option("--sku", "skus", multiple=True, help="Only this SKU id (repeatable).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table", show_default=True
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Save the plan (with payloads) for apply."
)
@click.option(
    "--show-payload", is_flag=True, help="Print the marketplace request bodies of the changes shown."
)
@click.option("--all", "show_all", is_flag=True, help="Also list unchanged SKUs in the table.")
@click.option(
    "--limit", type=int, default=TABLE_LIMIT, show_default=True, help="Rows per marketplace in the table."
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 2 with changes, 1 on error.")
@click.option(
    "--no-incremental",
    is_flag=True,
    help="Parse and evaluate every record, also those unchanged since they were applied.",
)
@allow_mass_delete_option
def plan(
    config_path: Path | None,
    marketplaces: Sequence[str],
    skus: Sequence[str],
    fmt: str,
    output: Path | None,
    show_payload: bool,
    show_all: bool,
    limit: int,
    detailed_exitcode: bool,
    no_incremental: bool,
    allow_mass_delete: bool,
) -> None:
    """Show what each marketplace would receive, without sending anything.

    A catalog file's records unchanged since they were applied (same bytes, same rules) are
    counted as unchanged without being parsed; --no-incremental reads every one.

    Deletes of more than a marketplace's max_delete_share of its live listings (default 10%)
    are shown, with a note that apply will refuse them without --allow-mass-delete.
    """
    project = _project(config_path)
    names = project.marketplace_names(list(marketplaces))
    only = set(skus) or None
    if output:
        check_writable(output, "the plan")
    writer = PlanWriter(output) if output else None
    out = console()
    summaries: list[PlanSummary] = []
    documents: list[dict[str, Any]] = []
    asked = _AskedSkus(only)
    try:
        with open_state(project) as state, catalog_reads(project) as reads:
            queued = queued_count(state) if fmt == "table" else 0
            for name in names:
                run = _compile_or_exit(project, name)
                planner = run.planner(state)
                planner.incremental = planner.incremental and not no_incremental
                planner.skipped_rows = bool(writer) or fmt != "table" or show_all  # shown as "before"
                if writer:
                    writer.begin(
                        name,
                        str(project.rules_path(name)),
                        state.fingerprint(run.compiled.marketplace),
                        fingerprint_of(run),
                    )
                table: list[tuple[str, ...]] | None = [] if fmt == "table" else None
                shown = 0
                payloads: list[tuple[str, Any]] = []
                changes: list[dict[str, Any]] = []
                records = asked.watch(reads.records(run.trade_policy))
                for change in planner.changes(records, only):
                    asked.planned(name, change.sku_id)
                    shown_record = writer or show_payload
                    record = change_record(change, run.connector, source_hash=False) if shown_record else None
                    if writer and record is not None:
                        writer.change(record)
                    if fmt == "jsonl":
                        click.echo(dumps(record) if record else change.to_json())
                    elif fmt == "json":
                        changes.append(record or change.to_dict())
                    elif table is not None and (change.op != "unchanged" or show_all) and shown < limit:
                        shown += 1
                        table.append(_row(change))
                        if show_payload and record and record.get("payloads"):
                            payloads.append((change.sku_id, record["payloads"]))
                summary = planner.summary
                summaries.append(summary)
                if only is None and not summary.deletes_skipped:
                    state.note_full_pass(name, "plan")
                guard = None if allow_mass_delete else _mass_delete(project, state, run, summary)
                if writer:
                    writer.end(summary.to_dict())
                if fmt == "jsonl":
                    click.echo(dumps({"summary": summary.to_dict(), "mass_delete": _guard_dict(guard)}))
                elif fmt == "json":
                    documents.append(
                        {
                            "marketplace": name,
                            "summary": summary.to_dict(),
                            "mass_delete": _guard_dict(guard),
                            "changes": changes,
                        }
                    )
                elif table is not None:
                    _print_changes(out, name, table)
                    for sku_id, bodies in payloads:
                        out.print(f"[bold]{name} payload for {escape(sku_id)}[/bold]")
                        click.echo(dumps(bodies[0] if len(bodies) == 1 else bodies, indent=2))
                    hidden = sum(summary.ops[o] for o in summary.ops if o != "unchanged" or show_all) - shown
                    if hidden > 0:
                        out.print(f"… {hidden} more; use --format jsonl, --sku or --limit to see them")
                    out.print(
                        f"[bold]{name}[/bold] {summary.line()}"
                        f" ({summary.ops['unchanged']} unchanged, "
                        f"{summary.excluded} not selected{_skipped(summary)})"
                        + (f"; [red]{guard.warning()}[/red]" if guard else "")
                    )
                    reconciled = reconciliation_line(state, name, queued)
                    if reconciled:
                        out.print(reconciled)
        if writer:
            writer.close()
            click.echo(f"Saved the plan to {output}; send it with `tradepost apply {output}`", err=True)
    except BaseException:
        if writer:
            writer.abort()
        raise
    if fmt == "json":
        click.echo(dumps({"format_version": 1, "marketplaces": documents}, indent=2))
    if asked.report(names, project):
        sys.exit(1)
    if detailed_exitcode and any(s.has_changes for s in summaries):
        sys.exit(EXIT_CHANGES)


def queued_count(state: StateStore) -> int:
    """How many SKUs the notification queue holds (see `tradepost status`)."""
    with NotificationQueue(state) as queue:
        return queue.counts().queued


def age(seconds: float) -> str:
    """A short age for people: 42s, 17min, 5h, 3d."""
    seconds = max(0.0, seconds)
    for unit, size, limit in (("s", 1, 60), ("min", 60, 3600), ("h", 3600, 172800)):
        if seconds < limit:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds / 86400:.0f}d"


def reconciliation_line(state: StateStore, name: str, queued: int) -> str | None:
    """'N notifications queued; last full apply Xh ago', when there is a queue or a record."""
    last = state.last_full_pass(name, "apply")
    if last is None and not queued:
        return None
    done = (
        "no full apply yet" if last is None else f"last full apply {age(time.time() - last.finished_at)} ago"
    )
    return f"{queued} notifications queued; {done}"


def _mass_delete(
    project: Project, state: StateStore, run: MarketplaceRun, summary: PlanSummary
) -> MassDelete | None:
    """The plan's deletes when apply would refuse them (more than the share of live listings)."""
    live = state.count(run.compiled.marketplace)
    share = project.marketplace(run.name).max_delete_share
    return mass_delete(run.name, summary.ops["delete"], live, share)


def _skipped(summary: PlanSummary) -> str:
    return f"; {summary.skipped} records not parsed: the same as when last planned" if summary.skipped else ""


def _guard_dict(guard: MassDelete | None) -> dict[str, Any] | None:
    return guard.to_dict() if guard else None


class _AskedSkus:
    """The ``--sku`` ids: which the catalog holds and which each marketplace planned.

    So that an id matching nothing is said, not passed over in silence.
    """

    def __init__(self, only: set[str] | None) -> None:
        self.only = only or set()
        self.records: dict[str, CatalogRecord] = {}
        self.in_catalog: set[str] = set()
        self.by_marketplace: dict[str, set[str]] = {}

    def watch(
        self, records: Iterable[CatalogRecord | MalformedRecord]
    ) -> Iterable[CatalogRecord | MalformedRecord]:
        # Without --sku the source itself goes to the planner, which reads its `complete` flag.
        return self._watched(records) if self.only else records

    def _watched(
        self, records: Iterable[CatalogRecord | MalformedRecord]
    ) -> Iterator[CatalogRecord | MalformedRecord]:
        for item in records:
            sku_id = item.sku_id if isinstance(item, MalformedRecord) else item.sku.id
            if sku_id in self.only:
                self.in_catalog.add(sku_id)
                if isinstance(item, CatalogRecord):
                    self.records[sku_id] = item
            yield item

    def planned(self, marketplace: str, sku_id: str) -> None:
        self.by_marketplace.setdefault(marketplace, set()).add(sku_id)

    def report(self, names: Sequence[str], project: Project) -> bool:
        """Say which ids matched nothing; True when one is not in the catalog or planned nowhere."""
        failed = False
        for sku_id in sorted(self.only):
            where = [name for name in names if sku_id in self.by_marketplace.get(name, ())]
            if sku_id not in self.in_catalog:
                click.echo(f"error: no SKU '{sku_id}' in the catalog ({_catalog_name(project)})", err=True)
                failed = True
            elif not where:
                click.echo(
                    f"error: SKU '{sku_id}' is in the catalog but not selected for "
                    f"{', '.join(names) or 'any marketplace'}; `tradepost explain {sku_id} -m "
                    f"{names[0] if names else 'MARKETPLACE'}` says why",
                    err=True,
                )
                failed = True
            else:
                for name in names:
                    if name not in where:
                        click.echo(f"note: SKU '{sku_id}' is not selected for {name}", err=True)
        return failed


def _catalog_name(project: Project) -> str:
    source = project.config.source
    if source.type == "vtex":
        return f"VTEX account {source.account or source.base_url}"
    return str(project.catalog_path)


_OP_STYLE = {"create": "green", "update": "yellow", "delete": "red", "invalid": "magenta", "unchanged": "dim"}


def _print_changes(out: Console, name: str, rows: list[tuple[str, ...]]) -> None:
    """A table on a terminal; into a pipe or a file, one tab-separated line per change."""
    if not rows:
        return
    if not out.is_terminal:
        for row in rows:
            print_plain((name, *row))
        return
    table = Table(title=f"{name}", title_justify="left", show_lines=False)
    for column in ("op", "sku", "fields", "price", "qty", "detail"):
        table.add_column(column, overflow="fold")
    for op, sku_id, *cells in rows:
        style = _OP_STYLE.get(op, "")
        # Data cells are Text, not markup: ids, titles and reasons come from the catalog.
        table.add_row(f"[{style}]{op}[/{style}]", Text(sku_id), *cells[:-1], Text(cells[-1]))
    out.print(table)


def _row(change: Change) -> tuple[str, ...]:
    """The cells of one change: op, sku, the parts that change, price, quantity, detail."""
    listing, before = change.listing, change.before
    price = qty = ""
    if listing is not None:
        sale = f" (sale {listing.sale_price})" if listing.sale_price is not None else ""
        price = (
            f"{before.price} → {listing.price}"
            if before and before.price != listing.price
            else f"{listing.price}"
        )
        price += sale
        qty = (
            f"{before.quantity} → {listing.quantity}"
            if before and before.quantity != listing.quantity
            else str(listing.quantity)
        )
    elif before is not None:
        price, qty = str(before.price), str(before.quantity)
    detail = (
        redact("; ".join(str(r) for r in change.reasons))
        if change.reasons
        else (listing.title if listing is not None else "")
    )
    return (change.op, change.sku_id, ",".join(change.kinds), price, qty, detail)


@click.command()
@click.argument("sku")
@click.option("-m", "--marketplace", required=True, help="The marketplace to explain the SKU for.")
@config_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def explain(sku: str, marketplace: str, config_path: Path | None, fmt: str) -> None:
    """Show, field by field, what a SKU becomes on a marketplace and which rule made each value."""
    project = _project(config_path)
    run = _compile_or_exit(project, marketplace)
    with open_state(project) as state:
        planner = run.planner(state)
        asked = _AskedSkus({sku})
        records = asked.watch(catalog_records(project, run.trade_policy))
        found = [c for c in planner.changes(records, {sku}, explain=True) if c.sku_id == sku]
        if not found and sku in asked.records:
            outcome = planner.evaluator.evaluate(asked.records[sku], True)
            click.echo(f"SKU {sku} is in the catalog but {marketplace} does not select it:", err=True)
            for reason in outcome.reasons:
                click.echo(f"  {reason}", err=True)
            sys.exit(1)
    if not found:
        click.echo(f"SKU '{sku}' is not in the catalog ({_catalog_name(project)})", err=True)
        sys.exit(1)
    change = found[0]
    outcome = change.outcome
    provenance = outcome.provenance if outcome else {}
    fees = _fees(run, asked.records.get(sku), change)
    payloads = (
        run.connector.payloads_for(
            change.op if change.op != "unchanged" else "create", change.kinds, change.listing, sku
        )
        if change.listing
        else []
    )
    if fmt == "json":
        click.echo(
            dumps(
                {
                    "sku_id": sku,
                    "marketplace": marketplace,
                    "op": change.op,
                    "status": outcome.status if outcome else change.op,
                    "fields": _explained_fields(change, provenance),
                    "reasons": [r.to_dict() for r in change.reasons],
                    "notes": [r.to_dict() for r in outcome.notes] if outcome else [],
                    "fees": fees,
                    "payloads": payloads,
                },
                indent=2,
            )
        )
        return
    out = console()
    status = outcome.status if outcome else change.op
    out.print(f"[bold]{escape(sku)}[/bold] on [bold]{escape(marketplace)}[/bold]: {status} → {change.op}")
    if change.listing is not None:
        rows = [
            (
                row["field"],
                dumps(row["value"]),
                row["rule"] or ("—" if row["value"] is None else "catalog default"),
            )
            for row in _explained_fields(change, provenance)
        ]
        if out.is_terminal:
            table = Table(show_header=True)
            for column in ("field", "value", "rule"):
                table.add_column(column, overflow="fold")
            for cells in rows:
                table.add_row(*(Text(cell) for cell in cells))
            out.print(table)
        else:
            for cells in rows:
                print_plain(cells)
    for reason in change.reasons:
        label = "excluded" if status == "excluded" else "reason"
        out.print(f"[magenta]{label}[/magenta]: {escape(redact(str(reason)))}", highlight=False)
    for note in outcome.notes if outcome else []:
        out.print(f"[cyan]note[/cyan]: {escape(redact(str(note)))}", highlight=False)
    for line in _fee_lines(fees, run.compiled.rules.currency):
        out.print(escape(line), highlight=False)
    if payloads:
        out.print("[bold]payload[/bold]")
        click.echo(dumps(payloads, indent=2))


def _fees(run: MarketplaceRun, record: CatalogRecord | None, change: Change) -> dict[str, Any] | None:
    """The commission on one unit at the listing's price (its sale price while a sale runs) and the
    margin against VTEX's cost price; None when the rule file has no fees: section."""
    fees = run.compiled.fees
    listing = change.listing
    if fees is None or listing is None:
        return None
    path = record.product.category_path if record is not None else ()
    cost = record.price.cost if record is not None else None
    sold = fees.margin(listing.sale_price if listing.sale_price is not None else listing.price, cost, path)
    return {
        "price": str(sold.price),
        "commission_rate": str(sold.fee.commission),
        "fixed_fee": str(sold.fee.fixed),
        "commission": str(sold.commission),
        "rule": f"{sold.fee.rule} ({sold.fee.span.file}:{sold.fee.span.line})",
        "cost": None if sold.cost is None else str(sold.cost),
        "margin": None if sold.margin is None else str(sold.margin),
        "margin_percent": None if sold.margin_rate is None else str(sold.margin_rate),
    }


def _fee_lines(fees: dict[str, Any] | None, currency: str) -> list[str]:
    if fees is None:
        return ["fees: the rule file has no fees: section, so no commission or margin is shown"]
    rate = f"{(Decimal(fees['commission_rate']) * 100).normalize():f}%"
    fixed = f" + {fees['fixed_fee']} per unit" if Decimal(fees["fixed_fee"]) else ""
    of = f"{rate}{fixed} of {fees['price']}; {fees['rule']}"
    lines = [f"commission: {fees['commission']} {currency} ({of})"]
    if fees["margin"] is None:
        lines.append("margin: not computed: the catalog record has no cost price (VTEX's costPrice)")
    else:
        lines.append(
            f"margin: {fees['margin']} {currency} ({fees['margin_percent']}% of the price), "
            f"price less commission less VTEX's cost price {fees['cost']}"
        )
    return lines


def _explained_fields(change: Change, provenance: dict[str, Any]) -> list[dict[str, Any]]:
    """Each field of the listing with the rule that made it; amounts as decimal strings, as in a plan."""
    listing = change.to_dict().get("after")
    if listing is None:
        return []
    rows: list[dict[str, Any]] = [
        {"field": "category", "value": listing["category"], "rule": _where(provenance.get("category"))},
        {"field": "price", "value": listing["price"], "rule": _where(provenance.get("price"))},
        {"field": "sale_price", "value": listing["sale_price"], "rule": _where(provenance.get("sale_price"))},
        {"field": "quantity", "value": listing["quantity"], "rule": "stock"},
    ]
    for key, value in listing["fields"].items():
        if isinstance(value, dict) and value:
            for child, child_value in value.items():
                name = f"listing.{key}.{child}"
                rows.append({"field": name, "value": child_value, "rule": _where(provenance.get(name))})
            continue
        name = f"listing.{key}"
        rows.append({"field": name, "value": value, "rule": _where(provenance.get(name))})
    if listing["group"] is not None:
        rows.append({"field": "variations.group", "value": listing["group"], "rule": "variations.group_by"})
    return rows


def _where(span: Any) -> str | None:
    return f"{span.file}:{span.line}" if span is not None else None
