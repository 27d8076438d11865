"""Alerts: what needs a person, posted to a webhook once, and once more when it clears.

The config's ``alerts:`` section (:class:`~engine.project._config.AlertsConfig`) names the
thresholds; :func:`firing_alerts` reads the state store alone (SQLite or PostgreSQL) for what
passes them now: a SKU whose stock *last sent* to a marketplace is at or under the low-stock
threshold (the quantity the marketplace shows, after the rule file's safety, share and max; a
count the state does not know, ``-1`` after a rebuild, is never low), a marketplace whose share of
SKUs failing passes the failing rate, an order held longer than allowed, a notification queued
longer than allowed.

The guarantee. An alert is posted once until it clears: each is a row of the ``alerts`` table,
claimed (inserted) before it is posted and marked posted after, so two checkers at once (a cron job
and `tradepost serve`) never post one twice; a checker killed between claim and post leaves a claim
that a later check takes over after :data:`CLAIM` seconds, so none is lost. A posted alert no longer
firing is deleted and posted as resolved (``resolved: false``: silently). A webhook that cannot be
reached after its retries (:data:`WEBHOOK_RETRIES`: 429, 5xx, lost connections) is an
:class:`AlertError`; what was not posted stays unposted, to be posted by the next check.

What a message carries: marketplace names, SKU and order ids, counts and thresholds. Never an
error text a marketplace wrote, nor anything of an order but its id (no buyer, address, email),
nor the webhook's URL (it carries a token: messages name where it is, ``env:NAME``).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import httpx

from engine._diagnostics import TradepostError
from engine.connectors._retry import RetryPolicy
from engine.orders._store import OrderStore
from engine.project._assembly import open_state
from engine.project._config import AlertsConfig, ConfigError, Project
from engine.secrets import read_secret, redact
from engine.state._db import insert_new
from engine.state._queue import NotificationQueue
from engine.state._store import StateStore

CLAIM = 300.0
"""Seconds a claimed alert stays its checker's before another check may post it."""
LISTED = 20
"""Items one message lists; past them, how many more."""
WEBHOOK_RETRIES = RetryPolicy(attempts=4, base=0.5, cap=8.0, jitter=(0.5, 1.0), budget=30.0)
"""How a post to the webhook is retried: Slack answers 429 with a Retry-After under load."""
TIMEOUT = 10.0
"""Seconds one post may take."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    marketplace TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    fired_at REAL NOT NULL,
    posted INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""
_COLUMNS = ("key", "kind", "marketplace", "subject", "detail", "fired_at", "posted")
_TITLES = {
    "low_stock": "low stock",
    "failing_rate": "SKUs failing",
    "held_order": "orders held too long",
    "queue_age": "notifications waiting too long",
}


class AlertError(TradepostError):
    """The webhook could not be reached, or refused the alert; the message names where its URL is."""


@dataclass(frozen=True)
class Alert:
    """One thing that needs a person: its kind, where, about what (a SKU or order id), and a
    sentence of ids and figures."""

    kind: str
    marketplace: str
    subject: str
    detail: str
    fired_at: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.marketplace}:{self.subject}"


@dataclass(frozen=True)
class AlertCheck:
    """One check: what fires now, what it posted as new, and what it posted as resolved."""

    at: float
    firing: list[Alert]
    posted: list[Alert]
    resolved: list[Alert]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "firing": [asdict(a) for a in self.firing],
            "posted": len(self.posted),
            "resolved": [asdict(a) for a in self.resolved],
        }


# -- what fires ----------------------------------------------------------------------------------


def alerts_config(project: Project) -> AlertsConfig:
    settings = project.config.alerts
    if settings is None:
        raise ConfigError(
            f"{project.path} has no `alerts:` section; add one with `webhook: env:NAME` (see README, Alerts)"
        )
    return settings


def firing_alerts(project: Project, state: StateStore, now: float | None = None) -> list[Alert]:
    """Every alert the state store shows now, by the config's ``alerts:`` thresholds."""
    settings = alerts_config(project)
    now = time.time() if now is None else now
    names = project.marketplace_names()
    found: list[Alert] = []
    if settings.low_stock is not None:
        watched = project.marketplace_names(settings.low_stock.marketplaces)
        found += (a for name in watched for a in _low_stock(state, name, settings.low_stock.threshold))
    if settings.max_failing_rate is not None:
        found += (a for name in names for a in _failing(state, name, settings.max_failing_rate))
    if settings.max_held_order_hours is not None:
        found += _held(state, names, settings.max_held_order_hours, now)
    if settings.max_queue_age_minutes is not None:
        found += _queued(state, settings.max_queue_age_minutes, now)
    return found


def _low_stock(state: StateStore, marketplace: str, threshold: int) -> Iterator[Alert]:
    rows = state.db.stream(
        "SELECT sku_id, quantity FROM listings WHERE marketplace = ? AND quantity >= 0 AND quantity <= ? "
        "ORDER BY sku_id",
        (marketplace, threshold),
    )
    for sku_id, quantity in rows:
        yield Alert("low_stock", marketplace, str(sku_id), f"SKU {sku_id}: {quantity} unit(s) last sent")


def _failing(state: StateStore, marketplace: str, limit: Decimal) -> list[Alert]:
    failing, live, unlisted = state.db.execute(
        "SELECT (SELECT count(*) FROM sku_errors WHERE marketplace = ?), "
        "(SELECT count(*) FROM listings WHERE marketplace = ?), "
        "(SELECT count(*) FROM sku_errors e WHERE e.marketplace = ? AND NOT EXISTS "
        "(SELECT 1 FROM listings l WHERE l.marketplace = e.marketplace AND l.sku_id = e.sku_id))",
        (marketplace, marketplace, marketplace),
    ).fetchone()
    skus = int(live) + int(unlisted)
    if not failing or Decimal(int(failing)) / skus <= limit:
        return []
    share = Decimal(int(failing)) / skus
    detail = f"{failing} of {skus} SKU(s) failing ({share:.1%}, more than {limit:.1%})"
    return [Alert("failing_rate", marketplace, "", detail)]


def _held(state: StateStore, names: Sequence[str], hours: float, now: float) -> list[Alert]:
    OrderStore(state)  # the order tables, made on first use
    found: list[Alert] = []
    for chunk, params in state.db.one_of(list(names)):
        rows = state.db.execute(  # ids and times only: an order's buyer is never read here
            "SELECT marketplace, order_id, received_at FROM orders WHERE state = 'held' "
            f"AND marketplace {chunk} AND received_at <= ? ORDER BY marketplace, received_at, order_id",
            [*params, now - hours * 3600],
        )
        found += (
            Alert("held_order", str(m), str(o), f"order {o}: held {(now - float(at)) / 3600:.1f} h")
            for m, o, at in rows
        )
    return found


def _queued(state: StateStore, minutes: float, now: float) -> list[Alert]:
    with NotificationQueue(state) as queue:
        counts = queue.counts()
    if counts.oldest_received_at is None or (now - counts.oldest_received_at) / 60 <= minutes:
        return []
    waited = (now - counts.oldest_received_at) / 60
    detail = (
        f"{counts.queued} SKU(s) queued, the oldest for {waited:.0f} min (more than {minutes:g} min): "
        "is `tradepost sync` running?"
    )
    return [Alert("queue_age", "", "", detail)]


# -- posted once until cleared -------------------------------------------------------------------


class AlertBook:
    """The ``alerts`` table: each alert claimed, posted, and deleted when it clears (see the module)."""

    def __init__(self, state: StateStore) -> None:
        self.db = state.db
        with self.db.schema():
            self.db.executescript(_SCHEMA)

    @staticmethod
    def kept_in(state: StateStore) -> bool:
        """Whether ``state`` has the alerts' table (`tradepost state migrate` makes it in the target)."""
        return "alerts" in state.dialect.tables(state.db)

    def stored(self) -> dict[str, tuple[Alert, bool]]:
        rows = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM alerts")
        return {
            str(key): (Alert(str(kind), str(market), str(subject), str(detail), float(at)), bool(posted))
            for key, kind, market, subject, detail, at, posted in rows
        }

    def claim(self, firing: Iterable[Alert], now: float) -> list[Alert]:
        """The alerts of ``firing`` this checker is to post: new, or claimed by one gone quiet."""
        known = self.stored()
        mine: list[Alert] = []
        with self.db.transaction(write=True):
            for alert in firing:
                held = known.get(alert.key)
                if held is None:
                    values = (alert.key, alert.kind, alert.marketplace, alert.subject, alert.detail, now, 0)
                    cursor = self.db.execute(insert_new("alerts", _COLUMNS), values)
                elif not held[1] and held[0].fired_at < now - CLAIM:
                    cursor = self.db.execute(
                        "UPDATE alerts SET fired_at = ?, detail = ? "
                        "WHERE key = ? AND posted = 0 AND fired_at < ?",
                        (now, alert.detail, alert.key, now - CLAIM),
                    )
                else:
                    continue
                if cursor.rowcount == 1:
                    mine.append(alert)
        return mine

    def mark_posted(self, alerts: Sequence[Alert]) -> None:
        self.db.executemany("UPDATE alerts SET posted = 1 WHERE key = ?", [(a.key,) for a in alerts])

    def unclaim(self, alerts: Sequence[Alert]) -> None:
        self.db.executemany("DELETE FROM alerts WHERE key = ? AND posted = 0", [(a.key,) for a in alerts])

    def clear(self, firing: Iterable[Alert]) -> list[Alert]:
        """Delete the alerts no longer firing; those that were posted, to be posted as resolved."""
        now_firing = {alert.key for alert in firing}
        resolved: list[Alert] = []
        with self.db.transaction(write=True):
            for key, (alert, posted) in self.stored().items():
                if key in now_firing:
                    continue
                deleted = self.db.execute("DELETE FROM alerts WHERE key = ?", (key,)).rowcount == 1
                if deleted and posted:
                    resolved.append(alert)
        return sorted(resolved, key=lambda a: (list(_TITLES).index(a.kind), a.marketplace, a.subject))

    def restore(self, alerts: Sequence[Alert]) -> None:
        """Put back cleared alerts whose resolution could not be posted: the next check posts it."""
        rows = [(a.key, a.kind, a.marketplace, a.subject, a.detail, a.fired_at, 1) for a in alerts]
        self.db.executemany(insert_new("alerts", _COLUMNS), rows)


# -- the webhook ---------------------------------------------------------------------------------


class Webhook:
    """A Slack-compatible incoming webhook: JSON ``{"text": ..., "blocks": [...]}`` posted, retried."""

    def __init__(
        self,
        url: str,
        where: str,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"the webhook in {where} is not an http(s) URL")
        self.url, self.where, self.transport = url, where, transport
        self.policy = policy or WEBHOOK_RETRIES

    @classmethod
    def of(cls, project: Project, **options: Any) -> Webhook:
        where = alerts_config(project).webhook
        return cls(read_secret(where, project.folder), where, **options)

    def post(self, text: str) -> None:
        body = {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}],
        }
        with httpx.Client(timeout=TIMEOUT, transport=self.transport, follow_redirects=False) as client:
            try:
                response = self.policy.run(lambda _: client.post(self.url, json=body))
            except httpx.HTTPError as exc:
                raise AlertError(
                    f"could not post to the webhook in {self.where} after {self.policy.attempts} tries "
                    f"({type(exc).__name__}: {redact(str(exc)).replace(self.url, '<the webhook>')}); check "
                    "its URL and that its host answers"
                ) from None
        if not response.is_success:
            raise AlertError(
                f"the webhook in {self.where} answered {response.status_code} {response.reason_phrase} "
                f"(429 and 5xx are tried {self.policy.attempts} times); check its URL"
            )


def grouped(alerts: Sequence[Alert]) -> list[list[Alert]]:
    """The alerts by kind and marketplace, in the order they come: one message each."""
    groups: dict[tuple[str, str], list[Alert]] = defaultdict(list)
    for alert in alerts:
        groups[(alert.kind, alert.marketplace)].append(alert)
    return list(groups.values())


def message(group: Sequence[Alert], resolved: bool = False) -> str:
    """A group's Slack message (mrkdwn): its title, then each alert's line (the first :data:`LISTED`)."""
    head = ":white_check_mark: *Tradepost resolved*" if resolved else ":rotating_light: *Tradepost alert*"
    first = group[0]
    lines = [
        f"{head}: {first.marketplace or 'project'}: {_TITLES.get(first.kind, first.kind)} ({len(group)})"
    ]
    lines += (f"• {alert.detail}" for alert in group[:LISTED])
    if len(group) > LISTED:
        lines.append(f"… and {len(group) - LISTED} more")
    return "\n".join(lines)


def check_alerts(
    project: Project, state: StateStore, *, webhook: Webhook | None = None, now: float | None = None
) -> AlertCheck:
    """Evaluate the alerts, post each new one and each cleared one (see the module's guarantee)."""
    settings = alerts_config(project)
    hook = webhook or Webhook.of(project)  # the URL read first: a missing one claims nothing
    now = time.time() if now is None else now
    firing = firing_alerts(project, state, now)
    book = AlertBook(state)
    fresh = book.claim(firing, now)
    _post_all(hook, fresh, book.mark_posted, book.unclaim, resolved=False)
    cleared = book.clear(firing)
    if settings.resolved:
        _post_all(hook, cleared, lambda _: None, book.restore, resolved=True)
    return AlertCheck(now, firing, fresh, cleared)


def _post_all(
    hook: Webhook,
    alerts: Sequence[Alert],
    done: Callable[[Sequence[Alert]], None],
    undone: Callable[[Sequence[Alert]], None],
    *,
    resolved: bool,
) -> None:
    """Post ``alerts``, a message per group; ``done`` with those posted, and when a post fails,
    ``undone`` with the rest (the error is raised after)."""
    posted: list[Alert] = []
    try:
        for group in grouped(alerts):
            hook.post(message(group, resolved))
            posted += group
    except AlertError:
        undone([alert for alert in alerts if alert not in posted])
        raise
    finally:
        done(posted)


@contextmanager
def alerting(project: Project, on_error: Callable[[str], None]) -> Iterator[None]:
    """Check the alerts every ``alerts.every_minutes`` in a thread while the block runs (`tradepost
    serve`); nothing without an ``alerts:`` section. A check that fails is reported to ``on_error``
    and tried again at the next; the webhook's URL is read before the block starts."""
    settings = project.config.alerts
    if settings is None:
        yield
        return
    Webhook.of(project)
    stop = threading.Event()

    def checking() -> None:
        while True:
            try:
                with open_state(project) as state:
                    check_alerts(project, state)
            except TradepostError as error:
                on_error(str(error))
            if stop.wait(settings.every_minutes * 60):
                return

    thread = threading.Thread(target=checking, name="tradepost-alerts", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(TIMEOUT * WEBHOOK_RETRIES.attempts)
