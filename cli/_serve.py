"""`tradepost serve`: the endpoint VTEX notifies of changes (`tradepost status` shows what is queued).

``serve`` listens where the config's ``serve:`` section says and queues each notification in the
state store before answering it. Stopping it (Ctrl-C, SIGTERM) is uvicorn's graceful shutdown:
it stops accepting, lets the requests in flight finish (each either committed and answered, or
unanswered so VTEX's copy is the only one acknowledged nowhere), then closes the store.
"""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import click
import uvicorn

from cli._plan import _project, config_option
from cli._sync import Pace, exit_status, lease_option, marketplace_runs, syncing
from cli.dashboard import dashboard_app
from engine import TradepostError
from engine.project import (
    ConfigError,
    MarketplaceRun,
    Project,
    StoreCollector,
    alerting,
    metrics_route,
    metrics_token,
    open_state,
    worker_metrics,
)
from engine.secrets import read_secret, redact
from engine.state import NotificationQueue
from marketplaces.vtex._notifications import SECRET_PARAMETER, ClientLimits, Integrations, notification_app

MIN_SECRET = 16
"""Characters the endpoint's secret needs at least: it is the endpoint's only protection."""
GRACE = 10
"""Seconds a stopping server gives the requests in flight."""


def _secret(project: Project) -> tuple[str, str]:
    """The endpoint's secret and where it is from; never the secret in any message."""
    settings = project.config.serve
    if settings is None:
        raise ConfigError(
            f"{project.path} has no `serve:` section; add one with the endpoint's host, port and "
            "`secret: env:NAME` (see README, Real-time sync)"
        )
    secret = read_secret(settings.secret, project.folder)
    if len(secret) < MIN_SECRET:
        raise ConfigError(
            f"the secret in {settings.secret} is shorter than {MIN_SECRET} characters; use a long random one "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return secret, settings.secret


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before uvicorn starts so the port (0: any free one) is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise TradepostError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); set `serve: port:` to a free port"
        ) from None
    return sock


def _integrations(project: Project, runs: Sequence[MarketplaceRun]) -> Integrations:
    """Whose notifications the endpoint takes: ``serve: account:``, and each marketplace's affiliate,
    the ``affiliate:`` of its rule file (the integration its orders are placed through, too)."""
    assert project.config.serve is not None
    return Integrations.of(project.config.serve.account, [run.compiled.rules.affiliate for run in runs])


def _describe_integrations(integrations: Integrations) -> str:
    """What ``serve`` says once at start about the notifications it refuses, or does not."""
    taken = [f"account {integrations.account} (An)"] if integrations.account else []
    if integrations.affiliates:
        taken.append(f"affiliate(s) {', '.join(sorted(integrations.affiliates))} (IdAffiliate)")
    if not taken:
        return "warning: any VTEX account and affiliate may notify (An and IdAffiliate are not checked)"
    text = f"taking notifications only for {' and '.join(taken)}; others are refused (403)"
    if integrations.account is None:
        text += "\nwarning: any VTEX account may notify (An is not checked); set `serve: account:`"
    return text


@click.command()
@config_option
@click.option("--sync", "with_sync", is_flag=True, help="Also run the sync worker (`tradepost sync`) here.")
@lease_option("With --sync. ")
def serve(config_path: Path | None, with_sync: bool, lease: float) -> None:
    """Receive VTEX's change notifications and queue them in the state store.

    Register the printed URL, with `?k=` and the secret the config names, as the affiliate's
    Search Endpoint. A notification is answered 200 only once it is committed to the state store;
    over `serve: rate_limit` a second from one address gets 429, a wrong secret 401, a malformed
    body 400, one over 16 KiB 413, one from another account or affiliate than configured 403, a
    failing store 503. GET /healthz shows the queue. Stops gracefully on Ctrl-C or SIGTERM.
    """
    project = _project(config_path)
    secret, where = _secret(project)
    settings = project.config.serve
    assert settings is not None
    runs = marketplace_runs(project)  # every rule file compiled: a mistake stops serve before it listens
    integrations = _integrations(project, runs)
    token = metrics_token(project)  # /metrics: the worker's counters through a folder it writes
    sock = _listen(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    servers: list[uvicorn.Server] = []
    ended: list[int] = []

    def worker_ended(code: int) -> None:
        """The worker process ended on its own (killed, say): serve stops too, so that whatever
        supervises it restarts both rather than leave notifications queued with nobody to apply them."""
        ended.append(code)
        for server in servers:
            server.should_exit = True

    worker = syncing(project, Pace(lease=lease), worker_ended) if with_sync else nullcontext()
    alerts = alerting(project, lambda error: click.echo(f"error: alerts: {redact(error)}", err=True))
    shared = worker_metrics() if token and with_sync else nullcontext(None)
    with (
        alerts,
        shared as folder,
        worker as wake,
        open_state(project) as store,
        NotificationQueue(store) as queue,
    ):
        limits = ClientLimits(settings.rate_limit)
        app = notification_app(
            queue, secret, integrations=integrations, limits=limits, queued=wake.set if wake else None
        )
        if token:
            app.router.routes.append(metrics_route(StoreCollector(store), token, folder))
        # Every path no route of the app takes (those above, and any added to it) is the dashboard's.
        app.router.default = dashboard_app(
            project, store, queue, host=host, queued=wake.set if wake else None
        )
        config = uvicorn.Config(
            app,
            lifespan="off",
            access_log=False,  # its lines carry the query string, and so the secret
            log_config=None,  # uvicorn's records reach the redacting handler of cli.main
            timeout_graceful_shutdown=GRACE,
        )
        click.echo(_describe_integrations(integrations), err=True)
        click.echo(
            f"listening on http://{host}:{port}/api/notification/?{SECRET_PARAMETER}=<the secret in {where}> "
            f"(GET /healthz for the queue, / for the dashboard); Ctrl-C stops"
        )
        sys.stdout.flush()
        server = uvicorn.Server(config)
        servers.append(server)
        server.should_exit = bool(ended)
        stopped_by = _run_until_stopped(server, sock)
        counts = queue.counts()
    if ended:
        click.echo(
            f"error: the sync worker ended ({exit_status(ended[0])}); serve stopped with it, "
            f"{counts.queued} notification(s) queued. Start `tradepost serve --sync` again",
            err=True,
        )
        sys.exit(1)
    click.echo(f"stopped by {stopped_by}; {counts.queued} notification(s) queued")


def _run_until_stopped(server: uvicorn.Server, sock: socket.socket) -> str:
    """Serve until SIGINT or SIGTERM, and name the signal. uvicorn finishes the requests in flight,
    puts back the handlers it found and raises the signal again: these handlers only record it, so
    the store is closed and the command exits 0, as after any clean stop."""
    received: list[str] = []
    previous = {
        sig: signal.signal(sig, lambda number, _: received.append(signal.Signals(number).name))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0] if received else "the server"
