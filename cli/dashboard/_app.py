"""The dashboard's ASGI app: who may see which page (:mod:`cli.dashboard._security`), and rendering.

Every page but the sign-in form needs a session signed in: a GET without one is redirected (303)
to ``/login``, a POST refused (403); a POST also needs the session's CSRF token (else 403, and
nothing changes). Pages are jinja2 templates with autoescape on, so nothing read from the state
store (a marketplace's error text, a note) can become markup; every answer carries a Content
Security Policy that allows no script, no frame and no request outside this server.

The state store is read on one connection, one request at a time, off the event loop, so the
notification endpoint beside the dashboard never waits for a page.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from cli._orders import _money_in
from cli._plan import age
from cli.dashboard._security import (
    FormTooLarge,
    Sessions,
    csrf_ok,
    csrf_token,
    read_form,
    session_middleware,
)
from engine import TradepostError
from engine.project import Project
from engine.state import NotificationQueue, StateStore

T = TypeVar("T")
Fields = dict[str, str]
Handler = Callable[["Dashboard", Request, Fields], Awaitable[Response]]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("cli.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(when=_when, age=age, money=lambda value, currency: _money_in(currency)(value))


@dataclass
class Dashboard:
    """What the pages read and act on: the project, its state store, the notification queue."""

    project: Project
    store: StateStore
    queue: NotificationQueue
    sessions: Sessions
    queued: Callable[[], None] | None = None
    """Called after a retry is queued (it wakes the worker of `serve --sync`)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(*args, **kwargs)`` (it reads or writes the store), one at a time on the store's
        connection, in a worker thread: the event loop, and VTEX's endpoint, never wait for it."""

        def locked() -> T:
            with self.lock:
                return work(*args, **kwargs)

        return await run_in_threadpool(locked)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page: its template with the CSRF token every form needs, and the message of the last action."""
    session = "session" in request.scope  # not on the page saying the dashboard is off
    html = TEMPLATES.get_template(template).render(
        csrf=csrf_token(request) if session else "",
        flash=request.session.pop("flash", None) if session else None,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A page of a signed-in session (its navigation and sign-out shown)."""
    return render(request, template, signed_in=True, **context)


def chosen_marketplaces(dashboard: Dashboard, fields: Fields) -> list[str]:
    """The marketplaces a page's ``marketplace`` filter names (all when empty)."""
    chosen = fields.get("marketplace") or None
    return dashboard.project.marketplace_names([chosen] if chosen else None)


def filtered_page(
    dashboard: Dashboard, request: Request, fields: Fields, template: str, **context: Any
) -> HTMLResponse:
    """A page with the marketplace filter: every configured marketplace, the one chosen."""
    names = dashboard.project.marketplace_names()
    return page(request, template, marketplaces=names, chosen=fields.get("marketplace", ""), **context)


def refuse(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "refused.html", status, message=message, signed_in=False)


def redirect(url: str, flash: tuple[str, str] | None = None, request: Request | None = None) -> Response:
    """303 to ``url`` (a GET after a POST), with ``flash`` (kind, text) shown on the page it lands on."""
    if flash is not None and request is not None:
        request.session["flash"] = list(flash)
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


async def posted_form(request: Request) -> Fields | Response:
    """The form posted, or why it is refused: 413 over the size limit, 403 without the session's
    CSRF token (whatever else it holds: nothing is done)."""
    try:
        fields = await read_form(request)
    except FormTooLarge as exc:
        return refuse(request, 413, str(exc))
    if not csrf_ok(request, fields):
        return refuse(request, 403, "This form has no valid CSRF token; reload the page and try again.")
    return fields


def signed_in_only(dashboard: Dashboard, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` behind the sign-in, its POSTs behind the CSRF check; its fields are the query's
    (GET) or the form's (POST). An error the engine explains is a page saying so, never a traceback."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        if not dashboard.sessions.signed_in(request):
            if request.method == "GET":
                return redirect("/login")
            return refuse(request, 403, "Sign in first.")
        fields: Fields | Response = dict(request.query_params)
        if request.method == "POST":
            fields = await posted_form(request)
        if isinstance(fields, Response):
            return fields
        try:
            return await handler(dashboard, request, fields)
        except (TradepostError, click.BadParameter) as exc:  # a filter as the CLI would refuse it
            return render(request, "refused.html", 400, message=str(exc), signed_in=True)

    return endpoint


def dashboard_routes(dashboard: Dashboard, pages: dict[str, tuple[Handler, str]]) -> list[Route]:
    """A route per page: path -> (handler, method), each behind :func:`signed_in_only`."""
    return [
        Route(path, signed_in_only(dashboard, handler), methods=[method])
        for path, (handler, method) in pages.items()
    ]


def dashboard_starlette(routes: list[Route], secure_cookies: bool) -> Starlette:
    return Starlette(routes=routes, middleware=[session_middleware(secure_cookies)])
