"""`tradepost alerts check`: post what needs a person to the config's webhook, for schedulers.

Exit 0 when nothing fires, 2 when something does (posted now or before: each alert is posted once
until it clears), 1 when the config, the state store or the webhook fails (a message naming where
the webhook's URL is, never the URL). `tradepost serve` runs the same check every
``alerts.every_minutes``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli._plan import _project, config_option
from engine.jsonio import dumps
from engine.project import check_alerts, open_state

EXIT_QUIET = 0
EXIT_FIRING = 2


@click.group()
def alerts() -> None:
    """Alerts posted to the webhook of the config's `alerts:` section."""


@alerts.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for schedulers).")
def check(config_path: Path | None, as_json: bool) -> None:
    """Check the alerts now; post each new one, and each cleared one as resolved.

    Alerts: low stock per SKU (the quantity last sent), a marketplace's share of SKUs failing,
    orders held too long, notifications queued too long (see README, Alerts). Exit codes: 0 none
    firing, 2 some firing, 1 error (nothing posted is recorded as posted).
    """
    project = _project(config_path)
    with open_state(project) as state:
        found = check_alerts(project, state)
    if as_json:
        click.echo(dumps(found.to_dict(), indent=2))
    else:
        for alert in found.firing:
            click.echo(f"firing {alert.kind}: {alert.marketplace or 'project'}: {alert.detail}")
        click.echo(
            f"{len(found.firing)} alert(s) firing; posted {len(found.posted)} new, "
            f"{len(found.resolved)} resolved"
        )
    sys.exit(EXIT_FIRING if found.firing else EXIT_QUIET)
