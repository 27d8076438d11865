"""The dashboard's KPI page: `tradepost report` for a window, its charts drawn on the server.

The figures are :func:`engine.project.project_report`'s, rendered by :func:`cli._report.report_html`
as the fragment the report's HTML file holds (its tables and its charts, inline SVG by pygal: no
script, nothing fetched), inside the dashboard's layout.
"""

from __future__ import annotations

import time

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from cli._log import since_seconds
from cli._report import report_html
from cli.dashboard._app import Dashboard, Fields, chosen_marketplaces, filtered_page
from engine.project import project_report

DEFAULT_WINDOW = "7d"


async def kpis(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    since = fields.get("since") or DEFAULT_WINDOW
    seconds = since_seconds(since)
    names = chosen_marketplaces(dashboard, fields)
    found = await dashboard.run(
        project_report, dashboard.project, dashboard.store, names, time.time() - seconds
    )
    report = Markup(report_html(found, standalone=False))  # escaped by its own template (autoescape on)
    return filtered_page(dashboard, request, fields, "kpis.html", report=report, since=since)
