"""`tradepost report`: the KPIs of a window, from the state store: a table, lines, JSON or one HTML file.

A rich table per section on a terminal (a column per marketplace), tab-separated lines into a
pipe (marketplace, section, KPI, value: one figure a line, for grep and awk), one JSON document
with ``--json``, and with ``--html FILE`` one self-contained page: its CSS inline, its charts
inline SVG drawn here (:mod:`cli._charts`), no script, nothing fetched, so it opens offline and
can be mailed. :func:`report_html` renders that page (or, ``standalone=False``, the fragment a
dashboard page embeds). Exit 0, or 1 when the config or the state store cannot be read.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import click
import jinja2
from markupsafe import Markup
from rich.markup import escape
from rich.table import Table

from cli._charts import bar_chart, line_chart
from cli._log import since_seconds
from cli._output import check_writable
from cli._plan import _project, age, config_option
from cli._render import console
from engine.jsonio import dumps
from engine.project import MarketplaceReport, Report, open_state, project_report

SECTIONS = ("products", "orders", "inventory", "financial")

KpiRow = tuple[str, str, list[str]]
"""(section, KPI, its value per marketplace, in the report's order), each value as people read it."""

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("cli", "templates"),
    autoescape=jinja2.select_autoescape(("html", "j2")),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@click.command()
@config_option
@click.option("--since", default="7d", show_default=True, help="The window: 7d, 12h, 30min, 2w.")
@click.option(
    "-m", "--marketplace", "marketplaces", multiple=True, help="Only this marketplace (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write one self-contained HTML page with charts (opens with no network).",
)
def report(
    config_path: Path | None, since: str, marketplaces: tuple[str, ...], as_json: bool, html_file: Path | None
) -> None:
    """Show the KPIs of a window, each defined in the README (Report and KPIs): products exported,
    pending, failing and active; orders a day, average value, time to VTEX and to shipment,
    cancellations, returns; stock-outs, oversold orders, stock sync lag; revenue, commission
    (the rule file's fees:) and margin; price-divergence decisions. What the state store does not
    record is said, not guessed."""
    if as_json and html_file is not None:
        raise click.UsageError("--json and --html are alternatives: give one")
    seconds = since_seconds(since)
    project = _project(config_path)
    names = project.marketplace_names(marketplaces)
    if html_file is not None:
        check_writable(html_file, "--html")
    with open_state(project) as store:
        found = project_report(project, store, names, time.time() - seconds)
    if html_file is not None:
        html_file.write_text(report_html(found, standalone=True), encoding="utf-8")
        click.echo(f"wrote {html_file} ({len(found.marketplaces)} marketplace(s), {_window(found)})")
    elif as_json:
        click.echo(dumps(found.to_dict(), indent=2))
    elif sys.stdout.isatty():
        _render_tables(found)
    else:
        for line in report_lines(found):
            click.echo(line)


def kpi_rows(found: Report) -> list[KpiRow]:
    """Every KPI of the report, a value per marketplace, in the sections' order."""
    return [
        (section, label, [value(m, found) for m in found.marketplaces]) for section, label, value in _KPIS
    ]


def report_lines(found: Report) -> list[str]:
    """The report for a pipe: a header line, then marketplace, section, KPI, value (tab-separated)."""
    lines = [f"report\t{_window(found)}"]
    for section, label, values in kpi_rows(found):
        pairs = zip(found.marketplaces, values, strict=True)
        lines += [f"{m.name}\t{section}\t{label}\t{v}" for m, v in pairs]
    return lines + [f"not recorded\t{sentence}" for sentence in found.not_recorded]


def report_html(found: Report, *, standalone: bool) -> str:
    """The report as HTML: a whole page (``standalone``: inline CSS, charts, no script, nothing to
    fetch), or the fragment a dashboard page embeds in its own layout."""
    template = _TEMPLATES.get_template("report.html.j2")
    rows = kpi_rows(found)
    return template.render(
        standalone=standalone,
        window=_window(found),
        marketplaces=[m.name for m in found.marketplaces],
        sections=[(section, [row[1:] for row in rows if row[0] == section]) for section in SECTIONS],
        charts=[Markup(svg) for svg in report_charts(found)],  # pygal escapes the values it draws
        not_recorded=found.not_recorded,
    )


def report_charts(found: Report) -> list[str]:
    """The report's charts as inline SVG: orders a day, orders by state, revenue and commission,
    divergence decisions, listings."""
    names = [m.name for m in found.marketplaces]
    days = sorted({day for m in found.marketplaces for day in m.orders.per_day})
    return [
        line_chart(
            "Orders received a day",
            days,
            {m.name: [m.orders.per_day.get(day, 0) for day in days] for m in found.marketplaces},
        ),
        _counts_chart("Orders by state (received in the window)", found, lambda m: m.orders.by_state),
        bar_chart(
            "Revenue, commission and margin",
            names,
            {
                "revenue": [float(m.financials.revenue) for m in found.marketplaces],
                "commission": [_float(m.financials.commission) for m in found.marketplaces],
                "margin": [_float(m.financials.margin) for m in found.marketplaces],
            },
        ),
        _counts_chart("Price-divergence decisions", found, lambda m: m.orders.decisions),
        bar_chart(
            "Listings",
            names,
            {
                "exported": [m.products.exported for m in found.marketplaces],
                "active": [m.products.active for m in found.marketplaces],
                "with errors": [m.products.with_errors for m in found.marketplaces],
                "invalid": [m.products.invalid for m in found.marketplaces],
            },
        ),
    ]


def _counts_chart(title: str, found: Report, counts: Callable[[MarketplaceReport], dict[str, int]]) -> str:
    """Stacked bars per marketplace: one colour per key (a state, a decision) of its counts."""
    keys = sorted({key for m in found.marketplaces for key in counts(m)})
    series = {key: [counts(m).get(key, 0) for m in found.marketplaces] for key in keys}
    return bar_chart(title, [m.name for m in found.marketplaces], series, stacked=True)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _window(found: Report) -> str:
    def at(when: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))

    return f"{at(found.since)} to {at(found.until)} ({found.days:.1f} days)"


def _percent(rate: float | None) -> str:
    return "none sent" if rate is None else f"{rate * 100:.1f}%"


def _rate(rate: float | None) -> str:
    return "no orders" if rate is None else f"{rate * 100:.1f}%"


def _money(value: Decimal | None, currency: str | None) -> str:
    if value is None:
        return "not computed"
    return f"{value:.2f}" + (f" {currency}" if currency else "")


def _average(m: MarketplaceReport) -> str:
    value = m.orders.average_value
    return "no orders" if value is None else _money(value, m.orders.currency)


def _took(m: MarketplaceReport, which: str) -> str:
    durations = m.orders.to_placement if which == "placement" else m.orders.to_shipment
    if durations.count == 0 or durations.mean is None or durations.median is None:
        return "none yet"
    return f"median {age(durations.median)}, mean {age(durations.mean)} ({durations.count} orders)"


def _lag(m: MarketplaceReport) -> str:
    lag = m.sync_lag
    if lag.count == 0 or lag.median is None or lag.longest is None:
        return "not recorded"
    return f"median {age(lag.median)}, longest {age(lag.longest)} ({lag.count} notifications)"


def _per_day(m: MarketplaceReport, found: Report) -> str:
    days = max(found.days, 1.0)
    return f"{m.orders.received / days:.1f}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(counts.items())) or "none"


def _commission(m: MarketplaceReport) -> str:
    f = m.financials
    return f"{_money(f.commission, f.currency)} ({f.fees_source})"


def _margin(m: MarketplaceReport) -> str:
    f = m.financials
    if f.margin is None:
        return "not computed"
    rate = "" if f.margin_rate is None else f" ({f.margin_rate * 100:.1f}% of revenue)"
    return _money(f.margin, f.currency) + rate


_KPIS: list[tuple[str, str, Callable[[MarketplaceReport, Report], str]]] = [
    ("products", "exported", lambda m, _: str(m.products.exported)),
    ("products", "active (quantity above 0)", lambda m, _: str(m.products.active)),
    ("products", "pending confirmation", lambda m, _: str(m.products.pending)),
    ("products", "with errors", lambda m, _: str(m.products.with_errors)),
    ("products", "invalid", lambda m, _: str(m.products.invalid)),
    (
        "products",
        "sync success rate",
        lambda m, _: (
            f"{_percent(m.products.success_rate)} "
            f"({m.products.applied} applied, {m.products.failed} failed, {m.products.runs} runs)"
        ),
    ),
    ("orders", "received", lambda m, _: str(m.orders.received)),
    ("orders", "received a day", _per_day),
    ("orders", "average order value", lambda m, _: _average(m)),
    ("orders", "time to VTEX placement", lambda m, _: _took(m, "placement")),
    ("orders", "time to shipment", lambda m, _: _took(m, "shipment")),
    (
        "orders",
        "cancelled",
        lambda m, _: f"{m.orders.cancelled} ({_rate(m.orders.cancellation_rate)})",
    ),
    ("orders", "returned", lambda m, _: str(m.orders.returned)),
    ("orders", "held for review", lambda m, _: str(m.orders.by_state.get("held", 0))),
    ("orders", "price-divergence decisions", lambda m, _: _counts(m.orders.decisions)),
    ("inventory", "out of stock (listed at 0)", lambda m, _: str(m.products.out_of_stock)),
    ("inventory", "oversold orders", lambda m, _: str(m.orders.oversold)),
    ("inventory", "stock sync lag", lambda m, _: _lag(m)),
    ("financial", "revenue", lambda m, _: _money(m.financials.revenue, m.financials.currency)),
    ("financial", "commission", lambda m, _: _commission(m)),
    ("financial", "margin (revenue less commission)", lambda m, _: _margin(m)),
]


def _render_tables(found: Report) -> None:
    out = console()
    out.print(f"[bold]report[/] {escape(_window(found))}")
    rows = kpi_rows(found)
    for section in SECTIONS:
        table = Table(title=section, title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("KPI")
        for m in found.marketplaces:
            table.add_column(escape(m.name), overflow="fold")
        for _, label, values in (row for row in rows if row[0] == section):
            table.add_row(escape(label), *(escape(v) for v in values))
        out.print(table)
    out.print("[bold]not recorded[/]")
    for sentence in found.not_recorded:
        out.print(f"  - {escape(sentence)}")
