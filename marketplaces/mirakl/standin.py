"""A stand-in for a Mirakl shop's catalog API, as Carrefour Brasil runs it: CSV imports and offers.

One shop, in memory, answering the documented paths (``shared/specs/mirakl``) the way the
connector's correctness depends on:

- every call needs the shop key, raw in ``Authorization`` (401 otherwise), and a ``shop_id``,
  when given, naming this shop (403 otherwise);
- imports are ``multipart/form-data`` with the file in the part ``file``, ``;``-separated and
  ``"``-quoted: P41 products, OF01 offers, PRI01 prices, STO01 stock. Each answers ``import_id``
  at once; its status (P42, OF02, PRI02, STO02) and error report (P44, OF03, PRI03, STO03: the
  refused lines with a reason; PRI03/STO03 the line number first) follow, and P45 lists the
  products a P41 import added, with their ``product-sku``;
- cataloguing: a valid P41 line becomes a product *being catalogued*; it is catalogued after
  ``catalogue_polls`` P42 polls of its import (2 by default), or at once by the sandbox control
  ``POST /_sandbox/catalogue``. Until then Carrefour discards price and stock: an OF01 line for
  its EAN is refused ("not catalogued"), a PRI01/STO01 line for an offer that does not exist too.
  A catalogued product is not updated by a later P41 (Carrefour curates it);
- P31 finds catalogued products by ``product_references`` (``EAN|789...``); OF21 lists the
  shop's offers (``max``/``offset``, ``total_count``, filter ``sku``);
- OF24 (JSON offers) implements the reset the spec warns of: every field not sent goes back to
  its default (``quantity`` 0, ``description``, ``discount`` and ``leadtime_to_ship`` deleted), so
  a client that sends OF24 partial bodies loses data here as it would on Mirakl;
- call frequency: each operation's "Maximum usage" (``_http.CALL_INTERVALS``: P41 once per 15
  minutes, OF01/OF24/PRI01/STO01 and the polls once a minute, STO02 every 15 s) is enforced
  with 429 and a Retry-After; only calls that were accepted take the slot;
- faults, the rate limit and the request log are the base :class:`~marketplaces._standin.Standin`'s.

Time runs ``time_scale`` times faster than the documented frequencies (1 by default; the sandbox
uses :data:`SANDBOX_TIME_SCALE`, a documented minute lasting 0.1 s), so tests and the sandbox never
wait real minutes. The connector takes the same ``time_scale`` option.

Orders: :attr:`MiraklStandin.order_desk` is the shop's order desk
(:class:`~marketplaces.mirakl._standin_order_desk.MiraklOrderDesk` on this stand-in's offers,
behind the same shop key, unless another is given); its ``routes()`` join this app's, as Amazon's
stand-in mounts its own.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from marketplaces._standin import (
    Faults,
    Standin,
    error_handlers,
    int_param,
    json_object,
    same_secret,
    sandbox_route,
)
from marketplaces._standin import Refusal as _Refusal
from marketplaces._standin import exact_json as _json
from marketplaces.mirakl._http import CALL_INTERVALS, csv_file, csv_rows
from marketplaces.mirakl._standin_after_sales import MiraklAfterSalesDesk
from marketplaces.mirakl._standin_order_desk import MiraklOrderDesk, shop_key_check

SANDBOX_API_KEY = "sandbox-shop-key-not-a-secret"
SANDBOX_SHOP_ID = "2000"
SANDBOX_TIME_SCALE = 600.0
"""The sandbox's Mirakl runs 600 times faster: a documented minute is 0.1 s, fifteen are 1.5 s."""
OFFER_STATES = frozenset({"11"})
"""Offer condition codes (OF61) this operator accepts; 11 is Mirakl's default "New"."""
TITLE_MAX = 150
PRODUCT_REQUIRED = ("sku", "title", "description", "category", "ean", "image-1")
PRODUCT_MEASURES = ("weight", "height", "width", "length")
FREQUENCY_TOLERANCE = 0.98
"""A call may come this share of its interval after the last one: clocks jitter by milliseconds."""
OF21_MAX = 100
OFFER_DEFAULTS: dict[str, Any] = {
    "quantity": 0,
    "discount_price": None,
    "description": None,
    "leadtime_to_ship": None,
}
"""What OF24 resets an offer's fields to when they are not sent."""


@dataclass
class Refusal(_Refusal):
    """Mirakl's error body: ``{"status", "message"}`` (the shape is not documented; see SOURCE.md)."""

    status: int
    message: str
    retry_after: float | None = None

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message}


@dataclass
class Import:
    """One import of any kind: its lines, refused lines with reasons, and how far it got."""

    kind: str
    import_id: str
    header: list[str]
    rows: list[dict[str, str]]
    errors: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    """(line number in the file, the line, the reason)."""
    added: list[dict[str, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    """P41: SKUs of its products still being catalogued."""
    polls: int = 0
    counts: dict[str, int] = field(default_factory=dict)


class MiraklStandin(Standin):
    """One Mirakl shop's catalog API; see the module docstring."""

    name = "carrefour"

    def __init__(
        self,
        api_key: str = SANDBOX_API_KEY,
        shop_id: str = SANDBOX_SHOP_ID,
        *,
        time_scale: float = 1.0,
        catalogue_polls: int = 2,
        rate_limit: float | None = None,
        burst: float | None = None,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.monotonic,
        order_desk: MiraklOrderDesk | None = None,
    ) -> None:
        self.api_key, self.shop_id = api_key, shop_id
        self.time_scale = time_scale
        self.catalogue_polls = catalogue_polls
        """P42 polls of an import before its products are catalogued (0: at the first poll)."""
        self.clock = clock
        self.enforce_frequency = True
        self.products: dict[str, dict[str, Any]] = {}
        """Shop SKU -> the product line, its ``product_sku``, ``state`` (cataloguing or catalogued)."""
        self.offers: dict[str, dict[str, Any]] = {}
        """Shop SKU -> the offer: product_sku, ean, price, discount_price, quantity, state_code, ..."""
        self.imports: dict[str, Import] = {}
        self.last_call: dict[str, float] = {}
        self.frequency_refusals = 0
        self.refused: Counter[str] = Counter()
        """Operation code -> calls answered 429 for coming before the operation's next slot."""
        self._ids = itertools.count(1001)
        self.order_desk = order_desk or MiraklOrderDesk(
            self.offers, authorize=shop_key_check(api_key, shop_id)
        )
        """The order desk whose ``routes()`` this app serves (the Mirakl orders component)."""
        self.after_sales = MiraklAfterSalesDesk(
            self.order_desk.orders,
            authorize=shop_key_check(api_key, shop_id),
            clock=lambda: self.order_desk.clock(),
        )
        """Returns (RT11) and customer message threads (M10, M11, M12) of the desk's orders."""
        super().__init__(rate_limit, burst, faults)

    # -- sandbox -----------------------------------------------------------------------------

    @classmethod
    def for_sandbox(
        cls, catalog: Iterable[Mapping[str, Any]], *, faults: Faults | None, rate_limit: float | None
    ) -> MiraklStandin:
        return cls(rate_limit=rate_limit, faults=faults, time_scale=SANDBOX_TIME_SCALE)

    def sandbox_credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key}

    def sandbox_options(self, url: str) -> dict[str, str]:
        return {"shop_id": self.shop_id, "time_scale": format(self.time_scale, "g")}

    def build(self) -> Starlette:
        imports = [
            ("P41", "/api/products/imports", "POST", self.product_import),
            ("P42", "/api/products/imports/{import_id}", "GET", self.product_status),
            ("P44", "/api/products/imports/{import_id}/error_report", "GET", self.product_errors),
            ("P45", "/api/products/imports/{import_id}/new_product_report", "GET", self.new_products),
            ("P31", "/api/products", "GET", self.find_products),
            ("OF01", "/api/offers/imports", "POST", self.offer_import),
            ("OF02", "/api/offers/imports/{import_id}", "GET", self.offer_status),
            ("OF03", "/api/offers/imports/{import_id}/error_report", "GET", self.offer_errors),
            ("OF24", "/api/offers", "POST", self.upsert_offers),
            ("OF21", "/api/offers", "GET", self.list_offers),
            ("PRI01", "/api/offers/pricing/imports", "POST", self.price_import),
            ("PRI02", "/api/offers/pricing/imports", "GET", self.price_status),
            ("PRI03", "/api/offers/pricing/imports/{import_id}/error_report", "GET", self.line_errors),
            ("STO01", "/api/offers/stock/imports", "POST", self.stock_import),
            ("STO02", "/api/offers/stock/imports/{import_id}/status", "GET", self.stock_status),
            ("STO03", "/api/offers/stock/imports/{import_id}/error_report", "GET", self.line_errors),
            ("A01", "/api/account", "GET", self.account),
        ]
        routes = [
            Route(path, self._operation(code, handler), methods=[m]) for code, path, m, handler in imports
        ]
        routes.append(sandbox_route("catalogue", self.catalogue_now))
        routes.extend(self.order_desk.routes())
        routes.extend(self.after_sales.routes())
        return Starlette(routes=routes, exception_handlers=error_handlers(self.error_body, _unrouted))

    def error_body(self, status: int, message: str) -> Any:
        return Refusal(status, message).body()

    # -- for tests ---------------------------------------------------------------------------

    def catalogue_all(self) -> int:
        """Finish every cataloguing now (what the sandbox control does); how many were catalogued."""
        done = 0
        for product in self.products.values():
            if product["state"] != "catalogued":
                product["state"] = "catalogued"
                done += 1
        return done

    # -- the shared gate ---------------------------------------------------------------------

    def _operation(self, code: str, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """The handler behind the shop key, the shop id and the operation's call frequency."""

        async def gated(request: Request) -> Response:
            if not same_secret(request.headers.get("authorization"), self.api_key):
                raise Refusal(401, "Unauthorized: the shop API key is missing or invalid")
            shop = request.query_params.get("shop_id")
            if shop is not None and shop != self.shop_id:
                raise Refusal(403, f"Forbidden: shop {shop} is not reachable with this key")
            arrived, wait = self.clock(), self._too_soon(code)
            if wait is not None:
                self.frequency_refusals += 1
                self.refused[code] += 1
                self.throttled += 1
                message = f"Too many requests: {code} is allowed once every {CALL_INTERVALS[code]:g} s"
                refused = _json(Refusal(429, message).body(), 429)
                refused.headers["Retry-After"] = f"{max(wait, 0.001):.3f}"
                return refused
            response: Response = await handler(request)
            if response.status_code < 400:  # an accepted call takes the slot, from its arrival
                self.last_call[code] = arrived
            return response

        return gated

    def _too_soon(self, code: str) -> float | None:
        interval = CALL_INTERVALS.get(code)
        last = self.last_call.get(code)
        if not self.enforce_frequency or interval is None or last is None:
            return None
        real = interval / self.time_scale
        waited = self.clock() - last
        return None if waited >= real * FREQUENCY_TOLERANCE else real - waited

    # -- products ----------------------------------------------------------------------------

    async def product_import(self, request: Request) -> Response:
        """P41: the file's valid lines start cataloguing; the rest go to the error report."""
        imported = self._new_import("P41", await _upload(request))
        for line, row in _numbered(imported.rows):
            problem = _product_problem(row, imported.header)
            if problem:
                imported.errors.append((line, row, problem))
                continue
            self._start_cataloguing(imported, row)
        return _json({"import_id": int(imported.import_id)}, 201)

    def _start_cataloguing(self, imported: Import, row: dict[str, str]) -> None:
        sku = row["sku"]
        product = self.products.get(sku)
        if product is not None and product["state"] == "catalogued":
            return  # curated by Carrefour: a later import does not change it
        same_ean = next(
            (p for p in self.products.values() if p["ean"] == row["ean"] and p["sku"] != sku), None
        )
        if same_ean is not None:
            imported.errors.append(
                (0, row, f"EAN {row['ean']} is already the product of SKU {same_ean['sku']}")
            )
            return
        product_sku = product["product_sku"] if product else f"MKP{next(self._ids):09d}"
        self.products[sku] = {**row, "product_sku": product_sku, "state": "cataloguing", "polls": 0}
        imported.pending.append(sku)

    async def product_status(self, request: Request) -> Response:
        """P42: RUNNING while its products are being catalogued; each poll brings them closer."""
        imported = self._import(request, "P41")
        imported.polls += 1
        still = []
        for sku in imported.pending:
            product = self.products.get(sku)
            if product is None:
                continue
            product["polls"] += 1
            if product["polls"] >= self.catalogue_polls:
                product["state"] = "catalogued"
            if product["state"] == "catalogued":
                imported.added.append(
                    {**_original(product, imported.header), "product-sku": product["product_sku"]}
                )
            else:
                still.append(sku)
        imported.pending = still
        status = "RUNNING" if still else "COMPLETE"
        body = {
            "import_id": int(imported.import_id),
            "import_status": status,
            "has_error_report": bool(imported.errors) and not still,
            "has_new_product_report": bool(imported.added) and not still,
            "transform_lines_read": len(imported.rows),
            "transform_lines_in_error": len(imported.errors),
            "transform_lines_in_success": len(imported.rows) - len(imported.errors),
            "date_created": "2026-01-01T00:00:00Z",
        }
        return _json(body)

    async def product_errors(self, request: Request) -> Response:
        """P44: the refused lines, their columns and an ``errors`` column."""
        imported = self._import(request, "P41")
        rows = [{**row, "errors": reason} for _, row, reason in imported.errors]
        return _csv([*imported.header, "errors"], rows)

    async def new_products(self, request: Request) -> Response:
        """P45: the products the import added, with Mirakl's ``product-sku``."""
        imported = self._import(request, "P41")
        return _csv([*imported.header, "product-sku"], imported.added)

    async def catalogue_now(self, request: Request) -> Response:
        """``POST /_sandbox/catalogue``: Carrefour finishes cataloguing every product now."""
        return _json({"catalogued": self.catalogue_all()})

    async def find_products(self, request: Request) -> Response:
        """P31: catalogued products by ``product_references`` (``TYPE|value``, comma separated)."""
        wanted = {
            ref.split("|", 1)[1]
            for ref in request.query_params.get("product_references", "").split(",")
            if "|" in ref
        }
        found = [
            {
                "product_id": product["ean"],
                "product_id_type": "EAN",
                "product_sku": product["product_sku"],
                "product_title": product["title"],
                "category_code": product["category"],
            }
            for product in self.products.values()
            if product["state"] == "catalogued" and product["ean"] in wanted
        ]
        return _json({"products": found, "total_count": len(found)})

    # -- offers ------------------------------------------------------------------------------

    async def offer_import(self, request: Request) -> Response:
        """OF01 (NORMAL mode): each line creates, updates or deletes one offer by ``sku``."""
        imported = self._new_import("OF01", await _upload(request))
        for line, row in _numbered(imported.rows):
            problem = self._apply_offer_line(row, imported)
            if problem:
                imported.errors.append((line, row, problem))
        return _json({"import_id": int(imported.import_id)}, 201)

    def _apply_offer_line(self, row: Mapping[str, str], imported: Import) -> str | None:
        sku = row.get("sku", "")
        if not sku:
            return "sku is required"
        if row.get("update-delete", "").lower() == "delete":
            if self.offers.pop(sku, None) is not None:
                imported.counts["offer_deleted"] = imported.counts.get("offer_deleted", 0) + 1
            return None
        existing = self.offers.get(sku)
        product = self._catalogued_by(row.get("product-id-type", ""), row.get("product-id", ""))
        if product is None and existing is None:
            return (
                f"The product {row.get('product-id-type', '')}|{row.get('product-id', '')} does not exist "
                "or is not catalogued yet: Carrefour discards its price and quantity"
            )
        offer = dict(existing or {"shop_sku": sku, **OFFER_DEFAULTS})
        if product is not None:
            offer.update(product_sku=product["product_sku"], ean=product["ean"])
        problem = _offer_fields(row, offer)
        if problem:
            return problem
        key = "offer_updated" if existing else "offer_inserted"
        imported.counts[key] = imported.counts.get(key, 0) + 1
        self.offers[sku] = offer
        return None

    def _catalogued_by(self, kind: str, value: str) -> dict[str, Any] | None:
        if kind.upper() not in ("EAN", "SHOP_SKU", "SKU"):
            return None
        for product in self.products.values():
            if product["state"] == "catalogued" and value in (product["ean"], product["product_sku"]):
                return product
        return None

    async def offer_status(self, request: Request) -> Response:
        """OF02."""
        imported = self._import(request, "OF01", "OF24")
        return _json(
            {
                "import_id": int(imported.import_id),
                "status": "COMPLETE",
                "mode": "NORMAL",
                "lines_read": len(imported.rows),
                "lines_in_error": len(imported.errors),
                "lines_in_success": len(imported.rows) - len(imported.errors),
                "lines_in_pending": 0,
                "offer_inserted": imported.counts.get("offer_inserted", 0),
                "offer_updated": imported.counts.get("offer_updated", 0),
                "offer_deleted": imported.counts.get("offer_deleted", 0),
                "has_error_report": bool(imported.errors),
                "date_created": "2026-01-01T00:00:00Z",
            }
        )

    async def offer_errors(self, request: Request) -> Response:
        """OF03: the refused lines in the input's format, plus ``error-line`` and ``error-message``."""
        imported = self._import(request, "OF01", "OF24")
        rows = [
            {**row, "error-line": str(line), "error-message": reason} for line, row, reason in imported.errors
        ]
        return _csv([*imported.header, "error-line", "error-message"], rows)

    async def upsert_offers(self, request: Request) -> Response:
        """OF24: JSON offers; every field not sent is reset to its default (the documented gotcha)."""
        body = await json_object(request, Refusal(400, "the body is not JSON"), Refusal(400, "not an object"))
        offers = body.get("offers")
        if not isinstance(offers, list) or not offers:
            raise Refusal(400, "offers is required")
        rows = [{k: "" if v is None else str(v) for k, v in o.items()} for o in offers if isinstance(o, dict)]
        imported = self._new_import("OF24", (["shop_sku"], rows))
        for line, offer in _numbered([o for o in offers if isinstance(o, dict)]):
            problem = self._apply_json_offer(offer)
            if problem:
                imported.errors.append((line, {"sku": str(offer.get("shop_sku", ""))}, problem))
        return _json({"import_id": int(imported.import_id)}, 201)

    def _apply_json_offer(self, sent: Mapping[str, Any]) -> str | None:
        missing = [f for f in ("shop_sku", "price", "state_code", "update_delete") if f not in sent]
        if missing:
            return f"required: {', '.join(missing)}"
        sku = str(sent["shop_sku"])
        if str(sent["update_delete"]).lower() == "delete":
            self.offers.pop(sku, None)
            return None
        existing = self.offers.get(sku)
        product = self._catalogued_by(str(sent.get("product_id_type", "")), str(sent.get("product_id", "")))
        if product is None and existing is None:
            return "The product does not exist or is not catalogued yet"
        offer: dict[str, Any] = {  # the reset: what is not sent takes its default
            "shop_sku": sku,
            "product_sku": (product or existing or {})["product_sku"],
            "ean": (product or existing or {})["ean"],
            **OFFER_DEFAULTS,
        }
        discount = sent.get("discount")
        row = {
            "price": _plain(sent.get("price")),
            "discount-price": _plain(discount.get("price")) if isinstance(discount, Mapping) else "",
            "quantity": _plain(sent.get("quantity", 0)),
            "state": _plain(sent.get("state_code")),
        }
        problem = _offer_fields(row, offer)
        if problem:
            return problem
        offer["description"] = sent.get("description")
        offer["leadtime_to_ship"] = sent.get("leadtime_to_ship")
        self.offers[sku] = offer
        return None

    async def list_offers(self, request: Request) -> Response:
        """OF21: the shop's offers, ``max`` (at most 100) from ``offset``; ``sku`` filters."""
        size = min(OF21_MAX, int_param(request, "max", 10) or 10)
        start = int_param(request, "offset", 0) or 0
        wanted = request.query_params.get("sku")
        offers = [o for sku, o in sorted(self.offers.items()) if wanted in (None, sku)]
        page = [_offer_view(offer) for offer in offers[start : start + size]]
        return _json({"offers": page, "total_count": len(offers)})

    # -- prices and stock --------------------------------------------------------------------

    async def price_import(self, request: Request) -> Response:
        """PRI01: each offer's prices replaced whole (an empty ``discount-price`` ends a sale)."""
        imported = self._new_import("PRI01", await _upload(request), uuid_id=True)
        for line, row in _numbered(imported.rows):
            offer = self.offers.get(row.get("offer-sku", ""))
            problem = "offer not found" if offer is None else _price_fields(row, offer)
            if problem:
                imported.errors.append((line, row, problem))
        return _json({"import_id": imported.import_id, "importId": imported.import_id}, 201)

    async def price_status(self, request: Request) -> Response:
        """PRI02: the imports filtered by ``import_id`` (seek paging; one page here)."""
        wanted = request.query_params.get("import_id")
        found = [i for i in self.imports.values() if i.kind == "PRI01" and wanted in (None, i.import_id)]
        data = [
            {
                "import_id": i.import_id,
                "status": "COMPLETE",
                "offers_updated": len(i.rows) - len(i.errors),
                "offers_in_error": len(i.errors),
                "lines_in_success": len(i.rows) - len(i.errors),
                "lines_in_error": len(i.errors),
                "has_error_report": bool(i.errors),
                "origin": "API",
                "shop_id": int(self.shop_id) if self.shop_id.isdigit() else 0,
            }
            for i in found
        ]
        return _json({"data": data})

    async def stock_import(self, request: Request) -> Response:
        """STO01: each line sets one offer's quantity (no ``warehouse-code``: the global quantity)."""
        imported = self._new_import("STO01", await _upload(request), uuid_id=True)
        for line, row in _numbered(imported.rows):
            offer = self.offers.get(row.get("offer-sku", ""))
            quantity = _whole(row.get("quantity", ""))
            problem = "offer not found" if offer is None else None if quantity is not None else "quantity"
            if problem or offer is None or quantity is None:
                imported.errors.append((line, row, problem or "quantity must be a whole number >= 0"))
                continue
            offer["quantity"] = quantity
        return _json({"import_id": imported.import_id}, 201)

    async def stock_status(self, request: Request) -> Response:
        """STO02."""
        imported = self._import(request, "STO01")
        return _json(
            {
                "import_id": imported.import_id,
                "status": "COMPLETE",
                "lines_in_success": len(imported.rows) - len(imported.errors),
                "lines_in_error": len(imported.errors),
                "has_error_report": bool(imported.errors),
            }
        )

    async def line_errors(self, request: Request) -> Response:
        """PRI03 and STO03: the line number, the reason, then the line's columns."""
        imported = self._import(request, "PRI01", "STO01")
        rows = [
            {"line-number": str(line), "error-message": reason, **row}
            for line, row, reason in imported.errors
        ]
        return _csv(["line-number", "error-message", *imported.header], rows)

    async def account(self, request: Request) -> Response:
        """A01: the shop (a credentials check)."""
        return _json({"shop_id": int(self.shop_id) if self.shop_id.isdigit() else 0, "shop_name": "Sandbox"})

    # -- imports -----------------------------------------------------------------------------

    def _new_import(
        self, kind: str, parsed: tuple[list[str], list[dict[str, str]]], uuid_id: bool = False
    ) -> Import:
        header, rows = parsed
        import_id = str(uuid.uuid4()) if uuid_id else str(next(self._ids))
        imported = Import(kind, import_id, header, rows)
        self.imports[import_id] = imported
        return imported

    def _import(self, request: Request, *kinds: str) -> Import:
        import_id = request.path_params.get("import_id", "")
        found = self.imports.get(import_id)
        if found is None or found.kind not in kinds:
            raise Refusal(404, f"import {import_id} not found")
        return found


# -- files -----------------------------------------------------------------------------------------


async def _upload(request: Request) -> tuple[list[str], list[dict[str, str]]]:
    """The CSV in the multipart part named ``file``: its header and its lines."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise Refusal(400, "an import is multipart/form-data with the file in the part 'file'")
    raw = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + await request.body()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="content-disposition") == "file":
            content = part.get_payload(decode=True)
            if not isinstance(content, bytes) or not content.strip():
                raise Refusal(400, "the file is empty")
            text = content.decode("utf-8-sig")
            header = [h.strip('"') for h in text.splitlines()[0].split(";")]
            return header, csv_rows(text)
    raise Refusal(400, "no part named 'file'")


def _csv(columns: list[str], rows: Iterable[Mapping[str, Any]]) -> Response:
    return Response(csv_file(columns, rows), media_type="text/csv")


def _numbered(rows: list[Any]) -> Iterable[tuple[int, Any]]:
    """Each line with its line number in the file (the header is line 1)."""
    return ((index + 2, row) for index, row in enumerate(rows))


def _original(product: Mapping[str, Any], header: list[str]) -> dict[str, str]:
    return {column: str(product.get(column, "")) for column in header}


def _product_problem(row: Mapping[str, str], header: list[str]) -> str | None:
    missing = [c for c in (*PRODUCT_REQUIRED, *PRODUCT_MEASURES) if not row.get(c, "").strip()]
    if missing:
        return f"required attribute(s) missing: {', '.join(missing)}"
    if len(row["title"]) > TITLE_MAX:
        return f"title is {len(row['title'])} characters; at most {TITLE_MAX}"
    if not _gtin_valid(row["ean"]):
        return f"EAN {row['ean']} is not a valid GTIN"
    for measure in PRODUCT_MEASURES:
        if _decimal(row[measure]) is None or (_decimal(row[measure]) or 0) <= 0:
            return f"{measure} must be a positive number"
    return None


def _offer_fields(row: Mapping[str, str], offer: dict[str, Any]) -> str | None:
    """Set the offer's fields from the columns given; the reason the line is refused, or None."""
    if "price" in row:
        problem = _price_fields(row, offer)
        if problem:
            return problem
    if "quantity" in row:
        quantity = _whole(row["quantity"] or "0")
        if quantity is None:
            return "quantity must be a whole number >= 0"
        offer["quantity"] = quantity
    if "state" in row:
        if row["state"] not in OFFER_STATES:
            return f"state {row['state']!r} is not an offer condition of this marketplace (OF61)"
        offer["state_code"] = row["state"]
    if row.get("leadtime-to-ship"):
        offer["leadtime_to_ship"] = row["leadtime-to-ship"]
    return None


def _price_fields(row: Mapping[str, str], offer: dict[str, Any]) -> str | None:
    price = _decimal(row.get("price", ""))
    if price is None or price <= 0:
        return f"price {row.get('price', '')!r} must be a positive decimal"
    discount = row.get("discount-price", "")
    if discount and (_decimal(discount) is None or _decimal(discount) >= price):  # type: ignore[operator]
        return f"discount-price {discount} must be a decimal below the price {row['price']}"
    offer["price"], offer["discount_price"] = row["price"], discount or None
    return None


def _offer_view(offer: Mapping[str, Any]) -> dict[str, Any]:
    """An offer as OF21 shows it."""
    discount = offer.get("discount_price")
    return {
        "shop_sku": offer["shop_sku"],
        "product_sku": offer.get("product_sku"),
        "product_references": [{"reference_type": "EAN", "reference": offer.get("ean")}],
        "price": Decimal(str(offer["price"])) if offer.get("price") else None,
        "quantity": offer.get("quantity", 0),
        "discount": {"discount_price": Decimal(str(discount))} if discount else None,
        "state_code": offer.get("state_code"),
        "description": offer.get("description"),
        "leadtime_to_ship": offer.get("leadtime_to_ship"),
        "active": int(offer.get("quantity") or 0) > 0,
    }


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _whole(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def _plain(value: Any) -> str:
    return "" if value is None else str(value)


def _gtin_valid(code: str) -> bool:
    if not code.isdigit() or len(code) not in (8, 12, 13, 14):
        return False
    digits = [int(d) for d in code]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits[:-1])))
    return (10 - total % 10) % 10 == digits[-1]


def _unrouted(request: Request, status: int, error: Exception) -> str:
    return f"{request.method} {request.url.path}: not found" if status == 404 else str(error)


__all__ = ["SANDBOX_API_KEY", "SANDBOX_SHOP_ID", "SANDBOX_TIME_SCALE", "MiraklStandin"]
