"""What a connector is: a declaration of a marketplace's rules plus a few hooks.

A connector subclass reads like a declaration (STYLE.md 2 and 5): class
attributes say what the marketplace requires (title length, images, GTIN,
attributes per category), how fast it may be called and in what batches;
hooks turn a canonical :class:`~engine.Listing` into the marketplace's
request bodies. The engine checks the declared requirements itself, so a
connector author writes no validation loop.

Sending is declared too: :attr:`Connector.routes` says which request sends each kind of change
(``engine.connectors._routes``), :attr:`Connector.merge_price_and_stock` whether a price and a
stock change travel in one call, and :attr:`Connector.token` which OAuth token authenticates the
calls. The base class builds the calls, merges the bodies and drops a token the marketplace
refused (:meth:`Connector.result_of`), once for every connector; a connector overrides
:meth:`Connector.routed` only where its marketplace truly differs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote

import httpx

from engine._diagnostics import TradepostError
from engine.connectors._change import ChangeRecord, RouteKind
from engine.connectors._readback import RemoteListing, differing
from engine.connectors._routes import Call, Route, merged, route_for
from engine.model._listing import Listing, Reason

if TYPE_CHECKING:
    from engine.connectors._liststatus import ListingKey, ListingStatus
    from engine.connectors._oauth import RefreshedToken
    from engine.connectors._reader import Reader


@dataclass(frozen=True)
class CallResult:
    """What a marketplace's answer means for the change."""

    ok: bool
    remote_id: str | None = None
    """The marketplace's id for the listing (Mercado Libre item id), kept in the state store."""
    retryable: bool = False
    error: str | None = None
    pending: str | None = None
    """Accepted but not yet processed (an Amazon submission): confirm it before trusting it."""
    remote_ids: Mapping[str, str] | None = None
    """For one request that created several SKUs (a family): SKU id -> the marketplace's id."""
    then: tuple[Call, ...] = ()
    """For a listing found already on the marketplace (:meth:`Connector.find_existing`): the
    idempotent calls that bring it to the plan (price, quantity, content, missing variations)."""


class MissingOption(TradepostError, ValueError):
    """A rule file leaves unset an option the connector cannot call the marketplace without."""


@dataclass
class Credentials:
    """Secrets for one marketplace, read from the environment or files, never from rule files."""

    values: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        value = self.values.get(name)
        if not value:
            raise TradepostError(
                f"missing credential '{name}'; set it in the environment or a file (see README)"
            )
        return value


class Connector:
    """Base of every marketplace connector."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    """Human name, for messages ("Mercado Libre")."""

    title_max_length: ClassVar[int | None] = None
    min_images: ClassVar[int] = 0
    max_images: ClassVar[int | None] = None
    requires_gtin_or_brand_mpn: ClassVar[bool] = False
    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {}
    """Category id (or prefix ending in '*', or '*' for all) -> attributes that must be present."""
    attribute_waivers: ClassVar[Mapping[str, Sequence[str]]] = {}
    """A required attribute -> rule-file attributes whose presence waives it (Mercado Libre takes an
    item without ``GTIN`` when ``EMPTY_GTIN_REASON`` says why)."""

    listing_fields: ClassVar[tuple[str, ...] | None] = None
    """Listing keys this connector reads besides ``STANDARD_FIELDS`` (``title``, ``attributes``…);
    `tradepost check` warns on any other key of a rule file's ``listing:`` (a misspelt ``titel:``).
    None: not declared, the keys are not checked."""

    option_defaults: ClassVar[Mapping[str, str]] = {}
    """Rule-file ``options`` a connector reads, with the value taken when a rule file sets none."""
    required_options: ClassVar[Mapping[str, str]] = {}
    """Options without which no call can be made -> what they hold, for the error (see :meth:`option`)."""

    base_url: ClassVar[str] = ""
    """The real API's base URL; the project config may point it at a stand-in."""
    credential_names: ClassVar[tuple[str, ...]] = ()
    """Secrets the connector needs (names in the config's ``credentials`` mapping)."""

    rate_limit: ClassVar[float] = 5.0
    """Requests per second the marketplace allows this seller."""
    batch_size: ClassVar[int] = 1
    """Changes one request may carry (feeds, batch endpoints)."""
    bulk_threshold: ClassVar[int | None] = None
    """From this many changes on, the executor hands them to :meth:`apply_in_bulk` (feeds)."""

    routes: ClassVar[Mapping[RouteKind, Route]] = {}
    """Kind of change -> the request that sends it; see :meth:`calls_for`."""
    creates_are_keyed: ClassVar[bool] = False
    """A create sent twice replaces the listing (the marketplace keys it by the SKU): every call may
    be repeated, so the executor looks nothing up before creating (:meth:`find_existing`)."""
    merge_price_and_stock: ClassVar[Literal["plan", "send"] | None] = None
    """Price and stock changed together travel in one call: the plan shows their bodies merged
    ("plan"), or shows both and the call merges them ("send"); None sends one call each."""
    lists_families: ClassVar[bool] = False
    """The marketplace lists a family of variations as one listing: the plan groups a rule file's
    ``variations`` and sends each family's body from :meth:`family_payload`."""

    token: RefreshedToken | None = None
    """The OAuth token that authenticates every call, when the marketplace uses one."""
    single_use_refresh_token: ClassVar[bool] = False
    """Each refresh answers a new refresh token and kills the old one (Mercado Libre): a process
    killed between the token endpoint's answer and writing the new token down must re-authorize.
    Work that runs several marketplaces side by side refreshes these first, alone, so no other
    marketplace's sending shares that window."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})
        self._required: dict[str, list[str]] = {}  # category -> attributes_required_for(category)

    def option(self, name: str) -> str:
        """The rule file's option ``name``, else its declared default; a required one left unset is a
        :class:`MissingOption` naming it."""
        value = self.options.get(name)
        if value in (None, ""):
            value = self.option_defaults.get(name)
        if value in (None, "") and name in self.required_options:
            raise MissingOption(
                f"{self.title or self.name} needs options.{name} ({self.required_options[name]})"
            )
        return "" if value is None else str(value)

    # -- requirements ------------------------------------------------------------------------

    def check(self, listing: Listing) -> list[Reason]:
        """The marketplace's own requirements, from the declarations above (run for every SKU
        planned: the listing's fields are read once, the attributes sent only when some are
        required)."""
        reasons: list[Reason] = []
        who = self.title or self.name
        fields = listing.fields
        title = str(fields.get("title") or "")  # Listing.title, read once
        limit = self.title_max_length
        if limit is not None and len(title) > limit:
            reasons.append(
                Reason("TP911", f"title is {len(title)} characters; {who} allows {limit}", "listing.title")
            )
        if not title.strip():
            reasons.append(Reason("TP911", f"title is empty; {who} requires one", "listing.title"))
        images = fields.get("images") or []
        if len(images) < self.min_images:
            reasons.append(
                Reason(
                    "TP912",
                    f"{len(images)} image(s); {who} requires at least {self.min_images}",
                    "listing.images",
                )
            )
        if self.max_images is not None and len(images) > self.max_images:
            reasons.append(
                Reason(
                    "TP912", f"{len(images)} images; {who} allows at most {self.max_images}", "listing.images"
                )
            )
        if self.requires_gtin_or_brand_mpn:
            gtin = fields.get("gtin")
            if not gtin and not (fields.get("brand") and fields.get("mpn")):
                reasons.append(
                    Reason("TP913", f"{who} requires a GTIN, or a brand and an MPN", "listing.gtin")
                )
        names = self._required.get(listing.category)
        if names is None:
            names = self.attributes_required_for(listing.category)
            if len(self._required) < 4096:  # a catalog has a few hundred categories at most
                self._required[listing.category] = names
        if not names:
            return reasons
        for name in self.attributes_missing(listing, names):
            if not self._waived(name, listing):
                reasons.append(
                    Reason(
                        "TP914",
                        f"attribute {name} is required by {who} in category {listing.category}",
                        f"listing.attributes.{name}",
                    )
                )
        return reasons

    def _waived(self, name: str, listing: Listing) -> bool:
        """Whether the rule file's attributes hold one that waives ``name`` (:attr:`attribute_waivers`)."""
        waivers = self.attribute_waivers.get(name, ())
        attributes = listing.attributes
        return any(waiver in attributes for waiver in waivers)

    def attributes_sent(self, listing: Listing) -> Mapping[str, Any]:
        """The attributes the marketplace will see, by the names ``required_attributes`` uses; one
        whose value is None or empty text is not sent (the check counts it as missing)."""
        return listing.attributes

    def attributes_missing(self, listing: Listing, names: Sequence[str]) -> list[str]:
        """Those of ``names`` the marketplace would get no value for, in order (from
        :meth:`attributes_sent`; a connector may answer without building all it sends)."""
        sent = self.attributes_sent(listing)
        return [name for name in names if sent.get(name) in (None, "")]

    def attributes_required_for(self, category: str) -> list[str]:
        """The attributes ``required_attributes`` asks of a category (:meth:`check` keeps the answer
        per category: the declarations are the class's own)."""
        names: list[str] = []
        for key, attributes in self.required_attributes.items():
            if key == "*" or key == category or (key.endswith("*") and category.startswith(key[:-1])):
                names.extend(a for a in attributes if a not in names)
        return names

    # -- payloads ----------------------------------------------------------------------------

    def payload(self, listing: Listing) -> dict[str, Any]:
        """The body that creates the listing or replaces its content."""
        raise NotImplementedError

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """The body of the cheapest call that changes only the price (and sale price)."""
        return self.payload(listing)

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        """The body of the cheapest call that changes only the quantity."""
        return self.payload(listing)

    def delete_payload(self, sku_id: str) -> dict[str, Any] | None:
        """The body that withdraws a listing, or None where the marketplace deletes without one."""
        return None

    def payloads_for(
        self, op: str, kinds: Sequence[str], listing: Listing | None, sku_id: str
    ) -> list[dict[str, Any]]:
        """The bodies a change sends: the cheapest calls for what changed.

        A create or a content change sends the whole listing; a price-only or
        stock-only change sends just that; both, merged into one body when the
        connector declares ``merge_price_and_stock = "plan"``.
        """
        if op == "delete":
            body = self.delete_payload(sku_id)
            return [body] if body is not None else []
        if listing is None:
            return []
        if op == "create" or "content" in kinds:
            return [self.payload(listing)]
        bodies = []
        if "price" in kinds:
            bodies.append(self.price_payload(listing))
        if "stock" in kinds:
            bodies.append(self.stock_payload(listing))
        if self.merge_price_and_stock == "plan" and op == "update" and set(kinds) == {"price", "stock"}:
            return [merged(bodies)]
        return bodies

    def offered_prices(self, listings: Sequence[Listing]) -> dict[str, Decimal]:
        """What a buyer is offered for each SKU, given the listings the rules give them now.

        The reference an incoming order's price is checked against: the sale
        price when the rules set one, else the price. A marketplace that prices
        a family as one (Mercado Libre variations) overrides this, so an order
        is compared with what the buyer really saw.
        """
        return {
            listing.sku_id: listing.sale_price if listing.sale_price is not None else listing.price
            for listing in listings
        }

    def family_payload(self, listings: Sequence[Listing]) -> dict[str, Any] | None:
        """One body for a family of variations, where the marketplace lists them together
        (a connector that overrides this declares :attr:`lists_families`)."""
        return None

    # -- sending -----------------------------------------------------------------------------

    def calls_for(
        self,
        change: ChangeRecord | Mapping[str, Any],
        remote_id: str | None,
        kept: Mapping[str, str] | None = None,
    ) -> list[Call]:
        """The requests that apply one saved change, built from :attr:`routes`.

        ``change`` carries the bodies the plan showed (a plan file's mapping is read into a
        :class:`ChangeRecord`); ``remote_id`` is the marketplace's id for the SKU from the state
        store (None before its creation, or its withdrawn listing's for a create). ``kept`` names,
        for a create, the SKUs (the change's own, or members of the family it carries) whose
        listing was withdrawn with the very content the change brings (the state store kept its
        content hash), with their ids: bringing those back needs their price and stock alone.
        One call per body (see :meth:`bodies_sent`), through the route of its kind, then
        :meth:`routed`.
        """
        record = ChangeRecord.of(change)
        values = {"sku_id": quote(record.sku_id, safe=""), "remote_id": quote(remote_id or "", safe="")}
        values.update(self.path_values(record, remote_id))
        calls = [
            route_for(self.routes, kinds).call(kinds, body, values)
            for kinds, body in self.bodies_sent(record)
        ]
        return self.routed(record, remote_id, calls, kept or {})

    def bodies_sent(self, change: ChangeRecord) -> list[tuple[tuple[RouteKind, ...], Any]]:
        """Each body a change sends, with the kinds of change it carries.

        A create or a content change sends its first body whole (a family's followers have none:
        the first member's body carries them); a delete sends its saved body or
        :meth:`delete_payload`; a price and stock update sends a body each, or one merged body
        (:attr:`merge_price_and_stock`).
        """
        kinds, bodies = change.route_kinds, list(change.payloads)
        if change.op == "delete":
            return [(kinds, bodies[0] if bodies else self.delete_payload(change.sku_id))]
        if change.op == "create" or kinds == ("content",):
            return [(kinds, body) for body in bodies[:1]]
        if self.merge_price_and_stock == "send" and len(bodies) > 1:
            return [(kinds, merged(bodies))]
        if len(bodies) == len(kinds):
            return [((kind,), body) for kind, body in zip(kinds, bodies, strict=True)]
        return [(kinds, body) for body in bodies]

    def path_values(self, change: ChangeRecord, remote_id: str | None) -> Mapping[str, str]:
        """What the :attr:`routes` templates name beyond ``sku_id`` and ``remote_id`` (those two
        are percent-encoded whole, ``/`` included); values given here are inserted as they are."""
        return {}

    def routed(
        self, change: ChangeRecord, remote_id: str | None, calls: list[Call], kept: Mapping[str, str]
    ) -> list[Call]:
        """The calls :attr:`routes` gave, changed where the marketplace truly differs (``kept``: see
        :meth:`calls_for`)."""
        return calls

    def result_of(self, call: Call, response: httpx.Response) -> CallResult:
        """What an answer means (:meth:`read_result`), after dropping an access token the marketplace
        refused (:meth:`token_refused`): the next request then fetches a new one."""
        self.drop_refused_token(response)
        return self.read_result(call, response)

    def token_refused(self, response: httpx.Response) -> bool:
        """Whether the answer refuses the access token itself (401)."""
        return response.status_code == 401

    def drop_refused_token(self, response: httpx.Response) -> bool:
        """The one rule for a refused access token, wherever an answer is read (apply, look-ups,
        read-back, order calls): when :meth:`token_refused` says so, forget the token so that the
        next request fetches a new one, and say True."""
        if not self.token_refused(response):
            return False
        self.forget_token()
        return True

    deleted_when_absent: ClassVar[bool] = False
    """A DELETE answered 404 is done: the listing is gone, which is what the delete wanted (a
    retried delete whose first answer was lost gets exactly that)."""

    def read_result(self, call: Call, response: httpx.Response) -> CallResult:
        """What an answer means: 2xx is done (:meth:`remote_id_in` names the listing); a refusal is
        retryable when it :meth:`may_pass_later`, else the request's fault."""
        status = response.status_code
        if 200 <= status < 300:
            return CallResult(True, remote_id=self.remote_id_in(call, response))
        if status == 404 and call.method == "DELETE" and self.deleted_when_absent:
            return CallResult(True)
        return CallResult(False, retryable=self.may_pass_later(response), error=self.error_of(response))

    def may_pass_later(self, response: httpx.Response) -> bool:
        """Whether a refusal may pass on retry: 429, 5xx, and a refused token when the connector
        holds one (dropped by :meth:`result_of`, the retry fetches another)."""
        status = response.status_code
        return status == 429 or status >= 500 or (self.token is not None and self.token_refused(response))

    def remote_id_in(self, call: Call, response: httpx.Response) -> str | None:
        """The marketplace's id for the listing, from a successful answer (None: not given)."""
        return None

    def error_of(self, response: httpx.Response) -> str:
        """A refusal as a one-line error: the status and the marketplace's message."""
        return f"{response.status_code}: {_error_text(response)}"

    def rotated_credentials(self) -> dict[str, str]:
        """Secrets the marketplace replaced during the run (a rotated refresh token), to persist."""
        rotated = self.token.refresh_token if self.token is not None else None
        return {"refresh_token": rotated} if rotated else {}

    def idempotent(self, call: Call) -> bool:
        """Whether sending the call twice does no harm; POST usually creates a second listing,
        unless the marketplace keys listings by the SKU (:attr:`creates_are_keyed`)."""
        return self.creates_are_keyed or call.method.upper() != "POST"

    async def find_existing(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], call: Call, change: ChangeRecord
    ) -> CallResult | None:
        """Before any non-idempotent call (and after a lost answer to one): the listing the
        marketplace already holds for the change's SKU(s), or None when it holds none.

        The executor asks this before every create it cannot safely repeat, so that a lost or
        restored state store never lists a SKU twice: the state is a cache of the marketplace.
        A found listing comes with its remote id(s) and, in ``then``, the idempotent calls that
        bring it to the plan. A lookup that failed is a not-ok result (retryable when it may pass
        later): the create is then not sent, since sending it blind could list the SKU twice.
        """
        return None

    async def auth_headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        """Headers that authenticate a request: :attr:`token`'s bearer, refreshed when needed."""
        return await self.token.headers(client, credentials) if self.token is not None else {}

    def forget_token(self) -> None:
        """Drop a cached access token the marketplace refused: the next auth_headers fetches one."""
        if self.token is not None:
            self.token.forget()

    # -- reading back what the marketplace holds (``tradepost state rebuild``) -----------------

    reads_back: ClassVar[bool] = False
    """Whether :meth:`read_back` is implemented."""

    def open_reader(self, client: httpx.AsyncClient, credentials: Credentials, **options: Any) -> Reader:
        """The :class:`~engine.connectors.Reader` that :meth:`read_back` makes its requests
        through (``options``: rate, max_attempts, base_delay, sleep)."""
        from engine.connectors._reader import Reader  # not at the top: _reader builds on this module

        return Reader(self, client, credentials, **options)

    def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        """Every listing of this seller on the marketplace, page by page (an async generator).

        Requests go through ``reader``, which authenticates, paces, retries and counts them.
        """
        raise NotImplementedError

    def remote_differences(
        self, listing: Listing, remote: RemoteListing, family: Sequence[Listing]
    ) -> tuple[str, ...]:
        """Which parts of ``remote`` differ from what this connector would send for ``listing``:
        any of "content", "price", "stock". ``family`` holds the listings of the SKU's group
        (itself included), for a marketplace that lists a family as one."""
        kinds: list[str] = []
        if differing(self.listing_content(listing, family), remote.content):
            kinds.append("content")
        if (remote.price, remote.sale_price) != (listing.price, listing.sale_price):
            kinds.append("price")
        if remote.quantity is not None and remote.quantity != max(0, listing.quantity):
            kinds.append("stock")
        return tuple(kinds)

    def listing_content(self, listing: Listing, family: Sequence[Listing]) -> Mapping[str, Any]:
        """The content this connector would send for ``listing``, in :attr:`RemoteListing.content`'s
        form; only the keys given here are compared, so what a marketplace adds to a listing
        (its own attributes, ids) never counts as a difference."""
        raise NotImplementedError

    # -- the marketplace's own status of our listings (``tradepost status --refresh``) ---------

    reports_listing_status: ClassVar[bool] = False
    """Whether :meth:`listing_statuses` is implemented: the marketplace's API says what it made of
    each listing (active, paused, under review, rejected, and why)."""

    def listing_statuses(self, reader: Reader, keys: Sequence[ListingKey]) -> AsyncIterator[ListingStatus]:
        """The marketplace's status of each listing of ``keys`` it can say one for (an async
        generator; a key left out is recorded as unknown), read in the marketplace's batches
        through ``reader``. A read that cannot be completed raises
        :class:`~engine.connectors.ReadBackError`."""
        raise NotImplementedError

    async def apply_in_bulk(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], changes: Sequence[ChangeRecord]
    ) -> dict[str, CallResult]:
        """Apply many changes at once (a feed); SKU id -> outcome, the processing report read."""
        raise NotImplementedError

    async def confirm(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], pending: Mapping[str, str]
    ) -> dict[str, CallResult]:
        """Outcomes of accepted-but-unprocessed changes (SKU id -> pending token)."""
        return {sku_id: CallResult(True) for sku_id in pending}


def _error_text(response: httpx.Response) -> str:
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase
