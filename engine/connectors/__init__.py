"""The connector contract: what every marketplace plug-in implements, and the registry that finds it.

The engine owns this contract and never imports a marketplace (DESIGN.md, "Layout"). A plug-in is
a package that subclasses the bases below and declares them as entry points:

- :class:`Connector` (``tradepost.connectors``): a marketplace's requirements as class attributes,
  plus hooks that turn a canonical :class:`Listing` into request bodies. Its :class:`Route` table
  says which request sends each :data:`RouteKind` of a :class:`ChangeRecord` (the typed saved
  change); :meth:`Connector.calls_for` builds the :class:`Call` objects from it and
  :meth:`Connector.read_result` reads each answer into a :class:`CallResult`. Secrets arrive as
  :class:`Credentials`, never from rule files.
- :class:`OrderChannel` (``tradepost.order_channels``): the order-side twin; every request goes
  through :func:`send`, which retries 429, 5xx and lost connections per a :class:`RetryPolicy`,
  and raises :class:`OrderCallError` for the rest.
  An order channel that also reads returns and customer questions and posts answers implements
  :class:`AfterSalesChannel` (records :class:`MarketplaceReturn`, :class:`CustomerQuestion`).
- :class:`Source` (``tradepost.sources``): the catalog a project's ``source.type`` names.
- stand-ins (``tradepost.standins``): local servers that answer like the marketplace.

An optional capability: a connector that can read the marketplace's own judgement of our listings
(active, paused, under review, rejected, with its reason) declares
``Connector.reports_listing_status`` and yields a :class:`ListingStatus` (one of
:data:`LISTING_STATES`) per :class:`ListingKey` asked about.

Shared pieces every plug-in may use: :class:`AiohttpTransport` (httpx over aiohttp: the
transport of every real connection) and :class:`Client` (the ``httpx.AsyncClient`` of every real
connection, with less CPU per request), :class:`RetryPolicy` (the one way a request is retried:
attempts, backoff with jitter, Retry-After read by :func:`retry_after`, a time budget; sync and
async), :class:`Reader` (paced, retried reads for ``state rebuild``), :class:`RefreshedToken` (an
OAuth access token kept fresh from a refresh token), and the read-back comparison helpers. The
guarantee: a connector built only from these names keeps working when the engine's private
modules change.
"""

from __future__ import annotations

from engine.connectors._aftersales import AfterSalesChannel, CustomerQuestion, MarketplaceReturn
from engine.connectors._change import ChangeRecord, RouteKind
from engine.connectors._contract import CallResult, Connector, Credentials
from engine.connectors._http import AiohttpTransport, Client
from engine.connectors._liststatus import (
    LISTING_STATES,
    NEEDS_ACTION,
    ListingKey,
    ListingState,
    ListingStatus,
)
from engine.connectors._oauth import RefreshedToken, TokenError, json_body
from engine.connectors._orderchannel import (
    BadOrder,
    Fulfilment,
    Invoice,
    OrderCallError,
    OrderChannel,
    Tracking,
    send,
)
from engine.connectors._pacing import TokenBucket
from engine.connectors._paging import token_pages
from engine.connectors._readback import ReadBackError, RemoteListing, comparable, differing, parts_differing
from engine.connectors._reader import Reader
from engine.connectors._registry import (
    CONNECTORS,
    ENTRY_POINT_GROUP,
    ORDER_CHANNELS,
    SOURCES,
    STANDINS,
    available_connectors,
    available_standins,
    connector_class,
    order_channel_class,
    source,
    standin_class,
)
from engine.connectors._retry import RetryPolicy, retry_after
from engine.connectors._routes import Call, Route
from engine.connectors._source import (
    Catalogs,
    Changed,
    RecordStream,
    Source,
    SourceConfig,
    VtexAccount,
    VtexPlacement,
)
from engine.model._listing import Listing, Reason

__all__ = [
    "CONNECTORS",
    "ENTRY_POINT_GROUP",
    "LISTING_STATES",
    "NEEDS_ACTION",
    "ORDER_CHANNELS",
    "SOURCES",
    "STANDINS",
    "AfterSalesChannel",
    "AiohttpTransport",
    "BadOrder",
    "Call",
    "CallResult",
    "Catalogs",
    "ChangeRecord",
    "Changed",
    "Client",
    "Connector",
    "Credentials",
    "CustomerQuestion",
    "Fulfilment",
    "Invoice",
    "Listing",
    "ListingKey",
    "ListingState",
    "ListingStatus",
    "MarketplaceReturn",
    "OrderCallError",
    "OrderChannel",
    "ReadBackError",
    "Reader",
    "Reason",
    "RecordStream",
    "RefreshedToken",
    "RemoteListing",
    "RetryPolicy",
    "Route",
    "RouteKind",
    "Source",
    "SourceConfig",
    "TokenBucket",
    "TokenError",
    "Tracking",
    "VtexAccount",
    "VtexPlacement",
    "available_connectors",
    "available_standins",
    "comparable",
    "connector_class",
    "differing",
    "json_body",
    "order_channel_class",
    "parts_differing",
    "retry_after",
    "send",
    "source",
    "standin_class",
    "token_pages",
]
