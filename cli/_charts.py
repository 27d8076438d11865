"""Charts as inline SVG, drawn on the server: a page that shows them needs no network and no script.

pygal draws them (a maintained charting library whose output is SVG text, styled by CSS inside
the SVG itself); what it would add for interactivity is taken out: its configuration script and
its comments (``js=[]`` already drops the script it would fetch). Each function returns one
``<svg>`` element as text, ready to put in an HTML page as it is (``| safe`` in a template): the
report's HTML file and the dashboard's KPI page both use these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pygal
from pygal.style import Style

WIDTH = 640
HEIGHT = 300

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#333",
    foreground_strong="#111",
    foreground_subtle="#888",
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    colors=("#2a6fdb", "#e8833a", "#3aa757", "#d64545", "#8e5bd6", "#20a4a4", "#c9a227", "#666"),
    title_font_size=14,
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=11,
)
"""Fonts the reader's system has (nothing fetched), colours that tell eight series apart."""

_SCRIPT = re.compile(r"<script\b.*?</script>", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)

Series = Mapping[str, Sequence[float | None]]


def bar_chart(title: str, labels: Sequence[str], series: Series, *, stacked: bool = False) -> str:
    """Bars per label, one colour per series (stacked when the series are parts of one whole)."""
    chart = (pygal.StackedBar if stacked else pygal.Bar)(**_options(title))
    return _rendered(chart, labels, series)


def line_chart(title: str, labels: Sequence[str], series: Series) -> str:
    """A line per series over the labels (days, say), for counts that change over time."""
    chart = pygal.Line(**_options(title), x_label_rotation=30 if len(labels) > 7 else 0)
    return _rendered(chart, labels, series)


def pie_chart(title: str, parts: Mapping[str, float]) -> str:
    """The share of each part of a whole (decisions by outcome, say); empty parts are left out."""
    chart = pygal.Pie(**_options(title), inner_radius=0.45)
    for name, value in parts.items():
        if value:
            chart.add(name, value)
    return _svg(chart)


def _options(title: str) -> dict[str, object]:
    return {
        "title": title,
        "style": STYLE,
        "width": WIDTH,
        "height": HEIGHT,
        "js": [],
        "disable_xml_declaration": True,
        "explicit_size": False,
        "legend_at_bottom": True,
        "print_values": False,
        "no_data_text": "no data in this window",
    }


def _rendered(chart: Any, labels: Sequence[str], series: Series) -> str:
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, list(values))
    return _svg(chart)


def _svg(chart: Any) -> str:
    text = chart.render(is_unicode=True)
    return _COMMENT.sub("", _SCRIPT.sub("", text))
