"""The project config (``tradepost.yaml``): where the catalog comes from, where state lives,
and which rule file drives each marketplace.

Paths are relative to the config file, so a project folder can be moved or
checked out anywhere and run from any working directory (cron jobs rarely
start where you expect).

A config error is shown with its source line, and a config is where someone pastes a secret by
mistake (``app_token: <the token>`` instead of ``app_token_env: NAME``, a password in the
``state:`` URL). So the line quoted under a config diagnostic is redacted: the value of any key
whose name says secret (token, secret, password, key, ...) unless it is a reference
(``env:NAME`` / ``file:PATH``), and the password of any URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine._diagnostics import Diagnostic, DiagnosticSink, RuleError, TradepostError
from engine.connectors._source import SourceConfig as SourceConfig
from engine.connectors._source import VtexAccount as VtexAccount
from engine.rules._rulefile import _pydantic_to_diagnostics
from engine.rules._yaml import read_yaml
from engine.sync._deletes import DEFAULT_MAX_DELETE_SHARE, parse_share

CONFIG_NAMES = ("tradepost.yaml", "tradepost.yml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrdersConfig(_Strict):
    """Where marketplace orders go: the VTEX account they are placed in, and how prices are checked."""

    vtex: VtexAccount | None = Field(
        None, description="The VTEX account orders are placed in; defaults to the source when it is VTEX."
    )
    simulate_prices: bool = Field(
        False,
        description="Also compare each item with VTEX's fulfillment-simulation price (one call per order).",
    )


class MarketplaceConfig(_Strict):
    rules: str = Field(description="The marketplace's rule file, relative to the config.")
    base_url: str | None = Field(None, description="Override the marketplace API base URL (sandbox).")
    credentials: dict[str, str] = Field(
        default_factory=dict,
        description="Where each secret is: env:NAME or file:PATH (relative to the config). Never the secret.",
    )
    rate_limit: float | None = Field(
        None, gt=0, description="Requests per second, when this seller's limit differs from the connector's."
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Connector options over the rule file's (e.g. a token URL pointing at the sandbox).",
    )
    max_delete_share: Decimal = Field(
        DEFAULT_MAX_DELETE_SHARE,
        description=(
            "Largest share of the live listings one apply may delete without --allow-mass-delete "
            "(10% or 0.1; 100% turns the guard off)."
        ),
    )

    @field_validator("max_delete_share", mode="before")
    @classmethod
    def _share(cls, value: object) -> object:
        return parse_share(value)


DEFAULT_NOTIFY_RATE = 500.0
"""Notifications a second one client may send `tradepost serve`: a bulk import in VTEX fires one per
SKU, and a one-at-a-time endpoint commits a few hundred a second anyway."""


class ServeConfig(_Strict):
    """`tradepost serve`: where the notification endpoint listens, the secret its URL carries, and
    whose notifications it takes (the account here, the affiliates on each marketplace)."""

    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0: every interface).")
    port: int = Field(8787, ge=0, le=65535, description="Port to listen on (0: any free port).")
    secret: str = Field(
        description=(
            "Where the endpoint's secret is: env:NAME or file:PATH (relative to the config), never the "
            "secret. VTEX sends it back as the `k` query parameter of the URL registered for the affiliate."
        )
    )
    account: str | None = Field(
        None,
        min_length=1,
        description=(
            "The VTEX account name notifications must come from (their `An`); unset: any. Each "
            "marketplace's `affiliate` is the `IdAffiliate` accepted."
        ),
    )
    rate_limit: float = Field(
        DEFAULT_NOTIFY_RATE,
        gt=0,
        description=(
            "Notifications a second one client address may send (a second's worth at once); "
            "over it, the endpoint answers 429."
        ),
    )
    metrics_token: str | None = Field(
        None,
        description=(
            "Where the bearer token GET /metrics requires is: env:NAME or file:PATH, never the token; "
            "unset: /metrics is not served."
        ),
    )
    dashboard_token: str | None = Field(
        None,
        description=(
            "Where the dashboard's sign-in token is: env:NAME or file:PATH (relative to the config), "
            "never the token. Unset: the dashboard at `/` is off."
        ),
    )


class StatusConfig(_Strict):
    """`tradepost status`: past which figures a marketplace needs a person (exit 2, for a scheduler)."""

    max_failing: int = Field(
        0, ge=0, description="SKUs whose last change failed, per marketplace, tolerated (0: any one pages)."
    )
    max_held_order_hours: float = Field(
        24, gt=0, description="Hours an order may wait in `held` for a decision."
    )
    max_queue_age_minutes: float = Field(
        30, gt=0, description="Minutes the oldest queued change notification may wait."
    )
    max_rejected: int = Field(
        0,
        ge=0,
        description=(
            "Listings the marketplace itself rejected or suppressed, per marketplace, tolerated "
            "(as last read by `tradepost status --refresh`; 0: any one pages)."
        ),
    )
    max_full_pass_age_hours: float = Field(
        48,
        gt=0,
        description=(
            "Hours since a marketplace with listings last had a full apply (the reconciliation); "
            "one never reconciled counts as too old."
        ),
    )


class LowStockAlert(_Strict):
    """Low stock: a SKU whose stock last sent to a marketplace is at most ``threshold`` units."""

    threshold: int = Field(
        ge=0, description="Units at or under which the stock last sent is low (0: sold out)."
    )
    marketplaces: list[str] | None = Field(
        None, description="The marketplaces watched (default: every one of the config)."
    )


class AlertsConfig(_Strict):
    """`tradepost alerts check` and `tradepost serve`: what is posted to the webhook, once until it clears."""

    webhook: str = Field(
        description=(
            "Where the webhook URL is: env:NAME or file:PATH (relative to the config), never the URL: "
            "it carries a token. Slack-compatible: a JSON body with `text`."
        )
    )
    low_stock: LowStockAlert | None = Field(None, description="Low-stock alerts per SKU (unset: none).")
    max_failing_rate: Decimal | None = Field(
        Decimal("0.05"),
        description=(
            "Share of a marketplace's SKUs whose last change failed past which it alerts "
            "(5% or 0.05; null: never)."
        ),
    )
    max_held_order_hours: float | None = Field(
        24, gt=0, description="Hours an order may wait in `held` before it alerts (null: never)."
    )
    max_queue_age_minutes: float | None = Field(
        30,
        gt=0,
        description="Minutes the oldest queued notification may wait before it alerts (null: never).",
    )
    resolved: bool = Field(True, description="Post a message when an alert clears.")
    every_minutes: float = Field(5, gt=0, description="How often `tradepost serve` checks the alerts.")

    @field_validator("max_failing_rate", mode="before")
    @classmethod
    def _share(cls, value: object) -> object:
        return None if value is None else parse_share(value)

    @field_validator("webhook")
    @classmethod
    def _reference(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(
                "must be env:NAME or file:PATH, where the URL is; never the URL: it carries a token"
            )
        return value


class ProjectConfig(_Strict):
    """A Tradepost project: one catalog source, one state store, several marketplaces."""

    source: SourceConfig
    state: str = Field(
        ".tradepost/state.sqlite",
        description=(
            "SQLite file path, or a postgresql://USER@HOST:PORT/DATABASE URL whose password, if any, is "
            "env:NAME or file:PATH (or comes from PGPASSWORD or ~/.pgpass), never the password itself."
        ),
    )
    marketplaces: dict[str, MarketplaceConfig]
    orders: OrdersConfig = Field(default_factory=OrdersConfig)
    serve: ServeConfig | None = Field(
        None, description="The change-notification endpoint (`tradepost serve`)."
    )
    status: StatusConfig = Field(
        default_factory=StatusConfig, description="Thresholds of `tradepost status` (exit 2 past one)."
    )
    alerts: AlertsConfig | None = Field(
        None, description="Alerts posted to a webhook (`tradepost alerts check`, `tradepost serve`)."
    )

    @field_validator("state")
    @classmethod
    def _state_url(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if not rest:
            return value
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("must be a file path, sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")
        return value

    @property
    def state_password_inline(self) -> bool:
        """The ``state:`` URL holds a password itself rather than naming where it is (refused when
        the state is opened, by a message that cannot quote the config's line)."""
        password = urlsplit(self.state).password if "://" in self.state else None
        return bool(password) and not str(password).startswith(("env:", "file:"))


@dataclass
class Project:
    """A loaded config with its paths resolved against the config's folder."""

    path: Path
    config: ProjectConfig

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        return (self.folder / relative).resolve() if not os.path.isabs(relative) else Path(relative)

    @property
    def state_url(self) -> str:
        state = self.config.state
        return state if "://" in state else str(self.resolve(state))

    @property
    def catalog_path(self) -> Path | None:
        path = self.config.source.path
        return self.resolve(path) if path else None

    def rules_path(self, marketplace: str) -> Path:
        return self.resolve(self.marketplace(marketplace).rules)

    def marketplace(self, name: str) -> MarketplaceConfig:
        try:
            return self.config.marketplaces[name]
        except KeyError:
            known = ", ".join(sorted(self.config.marketplaces)) or "none"
            raise ConfigError(f"marketplace '{name}' is not in {self.path} (configured: {known})") from None

    def marketplace_names(self, only: tuple[str, ...] | list[str] | None = None) -> list[str]:
        names = list(self.config.marketplaces)
        if only:
            for name in only:
                self.marketplace(name)
            return [n for n in names if n in only]
        return names


class ConfigError(TradepostError):
    """The project config is missing or wrong."""


def find_config(explicit: str | Path | None = None) -> Path:
    """The config to use: the given path, $TRADEPOST_CONFIG, or tradepost.yaml in the current folder."""
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise ConfigError(f"config file '{path}' does not exist")
        return path
    env = os.environ.get("TRADEPOST_CONFIG")
    if env:
        return find_config(env)
    for name in CONFIG_NAMES:
        if Path(name).exists():
            return Path(name)
    raise ConfigError(
        "no tradepost.yaml here; pass --config PATH (the bundled example: --config examples/tradepost.yaml)"
    )


def load_project(path: str | Path | None = None) -> Project:
    """Load and validate the project config; errors are positioned diagnostics (RuleError), their
    quoted lines redacted (:func:`redact_config_line`)."""
    config_path = find_config(path)
    sink = DiagnosticSink()
    try:
        root = read_yaml(config_path, sink)
    except OSError as exc:
        raise ConfigError(f"cannot read {config_path}: {exc.strerror or exc}") from None
    if sink.errors:
        raise RuleError(_redacted(sink.sorted()))
    assert root is not None
    try:
        config = ProjectConfig.model_validate(root.plain())
    except ValidationError as exc:
        _pydantic_to_diagnostics(exc, root, ProjectConfig, sink)
        raise RuleError(_redacted(sink.sorted())) from None
    return Project(config_path, config)


_SECRET_KEY = re.compile(
    r"^(?P<head>\s*(?:-\s+)?['\"]?(?P<key>[\w.-]*(?:secret|token|passw|pwd|key|credential|auth|cookie|hook)[\w.-]*)"
    r"['\"]?\s*:\s*)(?P<value>\S.*?)\s*$",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<user>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@", re.IGNORECASE)
_REFERENCE = re.compile(r"^['\"]?(?:env|file):")
MASK = "********"


def redact_config_line(line: str) -> str:
    """``line`` of a config file with what could be a secret masked: a URL's password, and the
    value of a secret-named key that is not an ``env:``/``file:`` reference."""
    line = _URL_PASSWORD.sub(lambda m: m["user"] + MASK + "@", line)
    match = _SECRET_KEY.match(line)
    if match is None or _REFERENCE.match(match["value"]) or match["value"] in ("|", ">", "{}", "[]"):
        return line
    return match["head"] + MASK


def _redacted(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    return [
        replace(d, source_line=redact_config_line(d.source_line)) if d.source_line is not None else d
        for d in diagnostics
    ]
