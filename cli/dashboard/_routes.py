"""The dashboard's pages: each reads what the CLI command of the same name reads, and acts as it does.

Overview is `tradepost status`, the log `tradepost log`, the review queue `tradepost orders list
--held` with `approve` / `reject --reason` (the same engine functions, so the same state machine
and history), listings with errors the failing and invalid SKUs `tradepost status` counts, where
"retry" queues the SKU exactly as a VTEX notification does: the sync worker reads it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from urllib.parse import quote, urlencode

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cli._log import since_seconds
from cli.dashboard._aftersales import AFTER_SALES_PAGES
from cli.dashboard._app import (
    Dashboard,
    Fields,
    Handler,
    chosen_marketplaces,
    dashboard_routes,
    dashboard_starlette,
    filtered_page,
    page,
    posted_form,
    redirect,
    refuse,
    render,
)
from cli.dashboard._kpis import kpis
from cli.dashboard._security import Sessions, is_loopback
from engine.orders import OrderError, OrderStore, StoredOrder
from engine.orders import approve as approve_order
from engine.orders import reject as reject_order
from engine.project import (
    LOG_LEVELS,
    ConfigError,
    LogLevel,
    Project,
    integration_log,
    listing_problems,
    project_status,
)
from engine.secrets import read_secret
from engine.state import NotificationQueue, StateStore
from marketplaces.vtex._notifications import VtexNotification

MIN_TOKEN = 16
"""Characters the dashboard's token needs at least: it is all that stands before the review queue."""
LOG_SHOWN = 200
"""Log entries a page shows, the newest."""


async def overview(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    found = await dashboard.run(project_status, dashboard.project, dashboard.store)
    return page(request, "overview.html", health=found)


async def listings(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    code = fields.get("code") or None
    found = await dashboard.run(
        listing_problems, dashboard.store, chosen_marketplaces(dashboard, fields), code=code
    )
    return filtered_page(dashboard, request, fields, "listings.html", found=found, code=code or "")


async def retry(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    """Queue a SKU for the sync worker, as VTEX's notification of a changed SKU would."""
    back = "/listings?" + urlencode({k: fields.get(k, "") for k in ("marketplace", "code")})
    try:
        notification = VtexNotification.model_validate({"idsku": fields.get("sku", "")})
    except ValidationError:
        return redirect(back, ("error", "That is not a SKU id."), request)
    changed_at = datetime.now(UTC).isoformat()
    await dashboard.run(dashboard.queue.enqueue, notification.idsku, notification.changes(), changed_at)
    if dashboard.queued is not None:
        dashboard.queued()
    message = f"SKU {notification.idsku} is queued: the sync worker reads it again and sends what changed."
    return redirect(back, ("ok", message), request)


def _held(dashboard: Dashboard, names: Sequence[str]) -> list[StoredOrder]:
    return list(OrderStore(dashboard.store).select(names, ["held"]))


async def review_queue(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    held = await dashboard.run(_held, dashboard, chosen_marketplaces(dashboard, fields))
    return filtered_page(dashboard, request, fields, "orders.html", held=held)


Events = list[dict[str, object]]


def _order(dashboard: Dashboard, marketplace: str, order_id: str) -> tuple[StoredOrder, Events]:
    store = OrderStore(dashboard.store)
    stored = store.get(marketplace, order_id)
    if stored is None:
        raise OrderError(f"no {marketplace} order {order_id} in the state store")
    return stored, store.events(marketplace, order_id)


async def order(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    marketplace, order_id = request.path_params["marketplace"], request.path_params["order_id"]
    stored, events = await dashboard.run(_order, dashboard, marketplace, order_id)
    return page(request, "order.html", stored=stored, events=events)


def _approved(dashboard: Dashboard, marketplace: str, order_id: str, note: str) -> StoredOrder:
    """`tradepost orders approve ID --note NOTE`: the same engine function, the same checks."""
    stored, _ = _order(dashboard, marketplace, order_id)
    return approve_order(OrderStore(dashboard.store), stored, note or None)


def _rejected(dashboard: Dashboard, marketplace: str, order_id: str, reason: str) -> StoredOrder:
    """`tradepost orders reject ID --reason REASON`: the same engine function, the same checks."""
    stored, _ = _order(dashboard, marketplace, order_id)
    return reject_order(OrderStore(dashboard.store), stored, reason)


async def _decide(
    dashboard: Dashboard, request: Request, decision: Callable[..., StoredOrder], text: str
) -> Response:
    """Approve or reject, then back to the order's page, which shows its new state (or why not)."""
    marketplace, order_id = request.path_params["marketplace"], request.path_params["order_id"]
    back = f"/orders/{quote(marketplace)}/{quote(order_id)}"
    try:
        updated = await dashboard.run(decision, dashboard, marketplace, order_id, text.strip())
    except OrderError as exc:
        return redirect(back, ("error", str(exc)), request)
    then = "placed in VTEX" if updated.state == "approved" else "cancelled on the marketplace"
    message = f"Order {order_id} is {updated.state}; it will be {then} at the next `tradepost orders push`."
    return redirect(back, ("ok", message), request)


async def approve(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    return await _decide(dashboard, request, _approved, fields.get("note", ""))


async def reject(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    return await _decide(dashboard, request, _rejected, fields.get("reason", ""))


async def log(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    level = fields.get("level") or "info"
    if level not in LOG_LEVELS:
        level = "info"
    since = fields.get("since") or ""
    after = time.time() - since_seconds(since) if since else 0.0
    found = await dashboard.run(
        integration_log,
        dashboard.store,
        chosen_marketplaces(dashboard, fields),
        sku=fields.get("sku") or None,
        level=cast(LogLevel, level),
        since=after,
    )
    return filtered_page(
        dashboard,
        request,
        fields,
        "log.html",
        found=found,
        shown=found.entries[:LOG_SHOWN],
        levels=LOG_LEVELS,
        level=level,
        sku=fields.get("sku", ""),
        since=since,
    )


async def sign_out(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    dashboard.sessions.sign_out(request)
    return redirect("/login")


PAGES: dict[str, tuple[Handler, str]] = {
    "/": (overview, "GET"),
    "/kpis": (kpis, "GET"),
    **AFTER_SALES_PAGES,
    "/listings": (listings, "GET"),
    "/listings/retry": (retry, "POST"),
    "/orders": (review_queue, "GET"),
    "/orders/{marketplace}/{order_id}": (order, "GET"),
    "/orders/{marketplace}/{order_id}/approve": (approve, "POST"),
    "/orders/{marketplace}/{order_id}/reject": (reject, "POST"),
    "/log": (log, "GET"),
    "/logout": (sign_out, "POST"),
}


def _sign_in_routes(dashboard: Dashboard) -> list[Route]:
    async def form(request: Request) -> Response:
        if dashboard.sessions.signed_in(request):
            return redirect("/")
        return render(request, "login.html", signed_in=False, wrong=False)

    async def sign_in(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        if await dashboard.sessions.attempts.wait(client) > 0:
            return refuse(request, 429, "Too many sign-in attempts; wait a second.")
        fields = await posted_form(request)
        if isinstance(fields, Response):
            return fields
        if not dashboard.sessions.token_matches(fields.get("token", "")):
            return render(request, "login.html", 401, signed_in=False, wrong=True)
        dashboard.sessions.sign_in(request)
        return redirect("/")

    return [Route("/login", form, methods=["GET"]), Route("/login", sign_in, methods=["POST"])]


def _off(config: Path) -> Starlette:
    async def off(request: Request) -> Response:
        return render(request, "off.html", signed_in=False, config=str(config))

    return Starlette(routes=[Route("/", off, methods=["GET"])])


def dashboard_app(
    project: Project,
    store: StateStore,
    queue: NotificationQueue,
    *,
    host: str,
    queued: Callable[[], None] | None = None,
) -> Starlette:
    """The dashboard over ``store`` (on a connection of its own), for a server listening on ``host``
    (its cookies are Secure unless that is a loopback address); only a page saying how to turn it
    on when the config's ``serve:`` section names no ``dashboard_token``. ``queued`` is called after
    a retry is queued (it wakes the worker of `serve --sync`)."""
    settings = project.config.serve
    reference = None if settings is None else settings.dashboard_token
    if reference is None:
        return _off(project.path)
    token = read_secret(reference, project.folder)
    if len(token) < MIN_TOKEN:
        raise ConfigError(
            f"the dashboard token in {reference} is shorter than {MIN_TOKEN} characters; use a long random "
            "one (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    pages = store.on_a_connection_of_its_own()  # whatever else serve reads the store with
    dashboard = Dashboard(project, pages, queue, Sessions(token), queued)
    routes = [*_sign_in_routes(dashboard), *dashboard_routes(dashboard, PAGES)]
    return dashboard_starlette(routes, secure_cookies=not is_loopback(host))
