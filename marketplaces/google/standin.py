"""The Google Merchant API stand-in: OAuth ``/token`` and ``productInputs`` insert, patch and delete.

One Merchant Center account with one API data source, in memory. It checks what the
``ProductInput`` proto and the product data specification (``shared/specs/google``) say, and
answers in Google's error shape ``{"error": {code, message, status}}``:

- ``POST /token``: the refresh-token grant with the client id and secret it was given (errors in
  Google OAuth's own flat shape). Every other call needs a bearer token it issued.
- every call: the account in the path and a ``dataSource`` naming its data source.
- ``productInputs:insert``: ``offerId`` (at most 50 characters), ``contentLanguage`` (ISO 639-1),
  ``feedLabel`` (at most 20 of A-Z, 0-9, ``-``, ``_``), no field the proto does not have,
  ``productAttributes.price`` as ``{amountMicros: integer, currencyCode}``, a title of at most 150
  and a description of at most 5000 characters, enums by their proto names (availability,
  condition, gender...). Requiring a price is stricter than the API, which accepts the input and
  reports the missing price later as an issue of the processed product.
- ``products.list``: every input as a processed product, paged by ``pageSize``/``pageToken``.
- ``productInputs.patch``: an ``updateMask`` (the API would default to every field sent; this
  stand-in requires one so that a client's mask is always checked) naming top-level
  ``productAttributes.*`` fields or ``customAttributes.*``; a field in the mask but not in the
  body is deleted. Unknown inputs are 404, for patch and delete alike.

Names are accepted in both forms the proto describes: plain ``lang~label~offerId`` and unpadded
base64url of it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from marketplaces._standin import (
    AccessTokens,
    Faults,
    Standin,
    error_handlers,
    form_body,
    int_param,
    json_object,
)
from marketplaces._standin import Refusal as _Refusal
from marketplaces._standin import exact_json as _json
from marketplaces.google._http import decoded_segment, encoded_segment

__all__ = [
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_REFRESH_TOKEN",
    "GoogleStandin",
]

SANDBOX_CLIENT_ID = "sandbox.apps.googleusercontent.com"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret-not-a-secret"
SANDBOX_REFRESH_TOKEN = "1//sandbox-refresh-token"

PRODUCT_ATTRIBUTES = frozenset(
    {
        "identifierExists", "isBundle", "title", "description", "link", "mobileLink", "canonicalLink",
        "imageLink", "additionalImageLinks", "expirationDate", "disclosureDate", "adult", "ageGroup",
        "availability", "availabilityDate", "brand", "color", "condition", "gender",
        "googleProductCategory", "gtins", "itemGroupId", "material", "mpn", "pattern", "price",
        "maximumRetailPrice", "installment", "subscriptionCost", "loyaltyPoints", "loyaltyPrograms",
        "productTypes", "salePrice", "salePriceEffectiveDate", "sellOnGoogleQuantity", "productHeight",
        "productLength", "productWidth", "productWeight", "shipping", "carrierShipping",
        "freeShippingThreshold", "shippingWeight", "shippingLength", "shippingWidth", "shippingHeight",
        "maxHandlingTime", "minHandlingTime", "shippingHandlingBusinessDays", "shippingTransitBusinessDays",
        "handlingCutoffTimes", "shippingLabel", "returnPolicyLabel", "transitTimeLabel", "size",
        "sizeSystem", "sizeTypes", "energyEfficiencyClass", "minEnergyEfficiencyClass",
        "maxEnergyEfficiencyClass", "unitPricingMeasure", "unitPricingBaseMeasure", "multipack",
        "adsGrouping", "adsLabels", "adsRedirect", "costOfGoodsSold", "productDetails", "productHighlights",
        "displayAdsId", "displayAdsSimilarIds", "displayAdsTitle", "displayAdsLink", "displayAdsValue",
        "promotionIds", "pickupMethod", "pickupSla", "pickupCost", "linkTemplate", "mobileLinkTemplate",
        "customLabel0", "customLabel1", "customLabel2", "customLabel3", "customLabel4",
        "includedDestinations", "excludedDestinations", "shoppingAdsExcludedCountries", "externalSellerId",
        "pause", "lifestyleImageLinks", "cloudExportAdditionalProperties", "virtualModelLink",
        "certifications", "structuredTitle", "structuredDescription", "autoPricingMinPrice",
        "sustainabilityIncentives", "videoLinks", "minimumOrderValues", "vin", "model", "trim", "bodyStyle",
        "year", "mileage", "electricRange", "fuelConsumption", "fuelConsumptionDischargedBattery",
        "energyConsumption", "co2Emissions", "dateFirstRegistered", "engine", "emissionsStandard",
        "certifiedPreOwned", "vehicleMsrp", "vehicleAllInPrice", "vehiclePriceType",
        "vehicleMandatoryInspectionIncluded", "vehicleExpenses", "warranty", "displayAddress", "latitude",
        "longitude", "neighborhood", "unitArea", "numberOfUnits", "propertyName", "numberOfBedrooms",
        "numberOfBathrooms", "propertyType", "amenityFeature", "utilitiesIncluded", "petPolicy",
        "specialtyHousingType", "productFee", "shortTitle", "questionsAndAnswers", "popularityRank",
        "itemGroupTitle", "documentLinks", "variantOptions", "relatedProducts",
    }
)  # fmt: skip
"""Every field of ``ProductAttributes`` (products_common.proto, Merchant API v1), as JSON names."""
INPUT_FIELDS = frozenset(
    {"name", "product", "legacyLocal", "offerId", "contentLanguage", "feedLabel", "versionNumber",
     "productAttributes", "customAttributes", "base64EncodedName", "base64EncodedProduct"}
)  # fmt: skip
ENUMS = {
    "availability": ("IN_STOCK", "OUT_OF_STOCK", "PREORDER", "LIMITED_AVAILABILITY", "BACKORDER"),
    "condition": ("NEW", "USED", "REFURBISHED"),
    "ageGroup": ("ADULT", "KIDS", "TODDLER", "INFANT", "NEWBORN"),
    "gender": ("MALE", "FEMALE", "UNISEX"),
    "sizeSystem": ("AU", "BR", "CN", "DE", "EU", "FR", "IT", "JP", "MEX", "UK", "US"),
    "sizeTypes": ("REGULAR", "PETITE", "MATERNITY", "BIG", "TALL", "PLUS"),
}
TEXTS = {"title": 150, "description": 5000, "link": 2000, "imageLink": 2000, "brand": 70, "mpn": 70,
         "color": 100, "size": 100, "material": 200, "pattern": 100, "itemGroupId": 50,
         "googleProductCategory": 750, "itemGroupTitle": 150}  # fmt: skip
"""Text attributes and their longest value (the specification's limits; 2000 for URLs)."""
LISTS = ("additionalImageLinks", "gtins", "productTypes", "productHighlights")
BOOLEANS = ("adult", "isBundle", "identifierExists")
PRICES = ("price", "salePrice")
LIST_DEFAULT, LIST_MAX = 25, 1000
"""``ListProductsRequest.page_size``: its default and the most it gives (products.proto)."""
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip


GRANT_REFUSALS = {
    "unsupported_grant_type": (400, "Invalid grant_type: expected refresh_token"),
    "invalid_client": (401, "Unauthorized"),
    "invalid_grant": (400, "Token has been expired or revoked."),
}
"""What ``POST /token`` answers for each OAuth error of a refused grant: its status and description."""


@dataclass
class Refusal(_Refusal):
    """An answer in Google's error shape (or OAuth's flat one), raised from anywhere in a handler."""

    status: int
    message: str
    oauth_error: str | None = None

    def body(self) -> dict[str, Any]:
        if self.oauth_error:
            return {"error": self.oauth_error, "error_description": self.message}
        return {
            "error": {"code": self.status, "message": self.message, "status": STATUS_NAMES.get(self.status)}
        }


class GoogleStandin(Standin):
    """The Merchant API for one account and data source, in memory; see the module docstring."""

    name = "google"

    def sandbox_options(self, url: str) -> dict[str, str]:
        return {"token_url": url}

    def __init__(
        self,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
        refresh_token: str = SANDBOX_REFRESH_TOKEN,
        *,
        account: str = "123456789",
        data_source: str = "987654321",
        token_lifetime: float = 3599.0,
        rate_limit: float | None = None,
        burst: float | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.oauth = AccessTokens(client_id, client_secret, refresh_token, token_lifetime)
        self.account, self.data_source = account, data_source
        self.tokens = self.oauth.issued
        """Access token -> when it expires (``time.monotonic``)."""
        self.inputs: dict[str, dict[str, Any]] = {}
        """``lang~label~offerId`` -> the stored ProductInput."""
        self.issues: dict[str, list[dict[str, Any]]] = {}
        """Offer id -> the item-level issues a test gave it (:meth:`disapprove`)."""
        self.list_page_max = LIST_MAX
        """Products one ``products.list`` page holds at most; the API "may return fewer" than asked,
        and tests lower this to make a client page through a small account."""
        super().__init__(rate_limit, burst, faults)

    def build(self) -> Starlette:
        inputs = "/products/v1/accounts/{account}/productInputs"
        routes = [
            Route("/token", self.token, methods=["POST"]),
            Route(inputs + ":insert", self.insert, methods=["POST"]),
            Route(inputs + "/{segment}", self.patch, methods=["PATCH"]),
            Route(inputs + "/{segment}", self.delete, methods=["DELETE"]),
            Route("/products/v1/accounts/{account}/products", self.list_products, methods=["GET"]),
        ]
        return Starlette(routes=routes, exception_handlers=error_handlers(self.error_body, _unrouted))

    def error_body(self, status: int, message: str) -> Any:
        return Refusal(status, message).body()

    # -- for tests -----------------------------------------------------------------------------

    def product_input(self, offer_id: str) -> dict[str, Any]:
        """The stored input of an offer id (whatever its language and label)."""
        return next(i for i in self.inputs.values() if i["offerId"] == offer_id)

    def revoke_tokens(self) -> None:
        self.oauth.revoke()

    def disapprove(self, offer_id: str, code: str, description: str, attribute: str | None = None) -> None:
        """What Google's policy and data checks do to a processed product: a DISAPPROVED issue."""
        issue = {
            "code": code,
            "severity": "DISAPPROVED",
            "description": description,
            "resolution": "merchant_action",
        }
        self.issues.setdefault(offer_id, []).append(
            {**issue, **({"attribute": attribute} if attribute else {})}
        )

    # -- OAuth -----------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """``POST /token`` (form): the refresh-token grant."""
        refused = self.oauth.refusal(await form_body(request))
        if refused is not None:
            raise Refusal(*GRANT_REFUSALS[refused], refused)
        access = self.oauth.issue(f"ya29.{secrets.token_urlsafe(24)}")
        scope = "https://www.googleapis.com/auth/content"
        body = {
            "access_token": access,
            "expires_in": int(self.oauth.lifetime),
            "scope": scope,
            "token_type": "Bearer",
        }
        return _json(body)

    # -- productInputs ---------------------------------------------------------------------------

    async def insert(self, request: Request) -> Response:
        """``productInputs:insert``: a new input, or the replacement of the one with the same identity."""
        self._authorize(request)
        body = await _body(request)
        problems = _identity_problems(body) + _input_problems(body)
        if not isinstance(body.get("productAttributes"), Mapping) or "price" not in body["productAttributes"]:
            problems.append("[productAttributes.price] a price is required")
        if problems:
            raise Refusal(400, "; ".join(problems))
        identity = f"{body['contentLanguage']}~{body['feedLabel']}~{body['offerId']}"
        stored = {key: value for key, value in body.items() if key not in ("name", "product")}
        self.inputs[identity] = stored
        return _json(self._resource(identity))

    async def patch(self, request: Request) -> Response:
        """``productInputs.patch``: the fields the mask names take the body's values, or go."""
        self._authorize(request)
        identity = self._identity(request)
        body = await _body(request)
        paths = [p.strip() for p in request.query_params.get("updateMask", "").split(",") if p.strip()]
        problems = _mask_problems(paths) + _input_problems(body)
        language, label, offer = identity.split("~", 2)
        for key, named in (("contentLanguage", language), ("feedLabel", label), ("offerId", offer)):
            if key in body and str(body[key]) != named:
                problems.append(f"[{key}] is immutable and differs from the product input's name")
        if problems:
            raise Refusal(400, "; ".join(problems))
        stored = self.inputs.get(identity)
        if stored is None:
            raise Refusal(404, f"Product input {self._name(identity)} not found.")
        attributes = stored.setdefault("productAttributes", {})
        sent_attributes = body.get("productAttributes") or {}
        custom = {c["name"]: c for c in stored.get("customAttributes") or []}
        sent_custom = {c["name"]: c for c in body.get("customAttributes") or []}
        for path in paths:
            group, _, field = path.partition(".")
            target, sent = (
                (attributes, sent_attributes) if group == "productAttributes" else (custom, sent_custom)
            )
            if field in sent:
                target[field] = sent[field]
            else:
                target.pop(field, None)
        stored["customAttributes"] = list(custom.values())
        return _json(self._resource(identity))

    async def delete(self, request: Request) -> Response:
        self._authorize(request)
        identity = self._identity(request)
        if self.inputs.pop(identity, None) is None:
            raise Refusal(404, f"Product input {self._name(identity)} not found.")
        return _json({})

    async def list_products(self, request: Request) -> Response:
        """``products.list``: the processed products (here, the inputs as they are), ``pageSize`` at a
        time (default 25, above 1,000 taken as 1,000), ``nextPageToken`` to the next page."""
        self._authorize(request, needs_source=False)
        size = int_param(request, "pageSize", LIST_DEFAULT)
        if size is None or size < 0:
            raise Refusal(400, "[pageSize] must be a positive number")
        size = min(size or LIST_DEFAULT, LIST_MAX, self.list_page_max)
        token = request.query_params.get("pageToken")
        start = 0
        if token:
            if not token.isdigit():
                raise Refusal(400, "[pageToken] is not a token this list gave")
            start = int(token)
        identities = sorted(self.inputs)
        body: dict[str, Any] = {"products": [self._product(i) for i in identities[start : start + size]]}
        if start + size < len(identities):
            body["nextPageToken"] = str(start + size)
        return _json(body)

    def _product(self, identity: str) -> dict[str, Any]:
        stored = self.inputs[identity]
        encoded = encoded_segment(identity)
        return {
            "name": f"accounts/{self.account}/products/{identity}",
            "base64EncodedName": f"accounts/{self.account}/products/{encoded}",
            "offerId": stored["offerId"],
            "contentLanguage": stored["contentLanguage"],
            "feedLabel": stored["feedLabel"],
            "dataSource": f"accounts/{self.account}/dataSources/{self.data_source}",
            "productAttributes": stored.get("productAttributes") or {},
            "customAttributes": stored.get("customAttributes") or [],
            "productStatus": self.product_status(stored),
        }

    def product_status(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """Approved in the feed label's country, unless a test disapproved it (:meth:`disapprove`)."""
        issues = self.issues.get(str(stored["offerId"]), [])
        country = str(stored["feedLabel"])
        verdict = "disapprovedCountries" if issues else "approvedCountries"
        return {
            "destinationStatuses": [{"reportingContext": "SHOPPING_ADS", verdict: [country]}],
            "itemLevelIssues": issues,
        }

    # -- helpers ---------------------------------------------------------------------------------

    def _authorize(self, request: Request, needs_source: bool = True) -> None:
        if not self.oauth.bearer(request):
            raise Refusal(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential.",
            )
        account = request.path_params.get("account")
        if account != self.account:
            raise Refusal(403, f"The caller does not have access to the accounts: [{account}]")
        if not needs_source:
            return
        source = request.query_params.get("dataSource")
        if not source:
            raise Refusal(400, "[dataSource] Required parameter is missing.")
        if source != f"accounts/{self.account}/dataSources/{self.data_source}":
            raise Refusal(400, f"[dataSource] {source} is not an API data source of account {self.account}.")

    def _identity(self, request: Request) -> str:
        segment = request.path_params["segment"]
        identity = decoded_segment(segment)
        if identity is None:
            raise Refusal(
                400, f"[name] {segment!r} is neither contentLanguage~feedLabel~offerId nor its base64url"
            )
        return identity

    def _name(self, identity: str) -> str:
        return f"accounts/{self.account}/productInputs/{identity}"

    def _resource(self, identity: str) -> dict[str, Any]:
        encoded = encoded_segment(identity)
        return {
            "name": self._name(identity),
            "base64EncodedName": f"accounts/{self.account}/productInputs/{encoded}",
            "product": f"accounts/{self.account}/products/{identity}",
            "base64EncodedProduct": f"accounts/{self.account}/products/{encoded}",
            **self.inputs[identity],
        }


def _unrouted(request: Request, status: int, error: Exception) -> str:
    return f"Method not found: {request.method} {request.url.path}" if status in (404, 405) else str(error)


async def _body(request: Request) -> dict[str, Any]:
    invalid = "Invalid JSON payload received."
    return await json_object(request, Refusal(400, invalid), Refusal(400, f"{invalid} Expected an object."))


def _identity_problems(body: Mapping[str, Any]) -> list[str]:
    problems = [
        f"[{key}] Required field is missing."
        for key in ("offerId", "contentLanguage", "feedLabel")
        if not body.get(key)
    ]
    offer, language, label = body.get("offerId"), body.get("contentLanguage"), body.get("feedLabel")
    if offer and len(str(offer)) > 50:
        problems.append(f"[offerId] is {len(str(offer))} characters; the maximum is 50")
    if language and not re.fullmatch(r"[a-z]{2}", str(language)):
        problems.append(f"[contentLanguage] {language!r} is not a two-letter ISO 639-1 code")
    if label and not re.fullmatch(r"[A-Z0-9_-]{1,20}", str(label)):
        problems.append(f"[feedLabel] {label!r} must be 1 to 20 of A-Z, 0-9, '-' and '_'")
    return problems


def _input_problems(body: Mapping[str, Any]) -> list[str]:
    """What the proto's types refuse, wherever a ProductInput is sent."""
    problems = [
        f"Invalid JSON payload received. Unknown name {key!r} at 'product_input': Cannot find field."
        for key in body
        if key not in INPUT_FIELDS
    ]
    attributes = body.get("productAttributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, Mapping):
        return [*problems, "[productAttributes] must be an object"]
    for key, value in attributes.items():
        problems += _attribute_problems(key, value)
    for custom in body.get("customAttributes") or []:
        if (
            not isinstance(custom, Mapping)
            or not custom.get("name")
            or ("value" in custom) == ("groupValues" in custom)
        ):
            problems.append(
                f"[customAttributes] {custom!r} needs a name and exactly one of value, groupValues"
            )
    return problems


def _attribute_problems(key: str, value: Any) -> list[str]:
    where = f"[productAttributes.{key}]"
    if key not in PRODUCT_ATTRIBUTES:
        return [
            f"Invalid JSON payload received. Unknown name {key!r} at 'product_input.product_attributes': "
            "Cannot find field."
        ]
    if key in PRICES:
        return _price_problems(where, value)
    if key in ENUMS:
        values = value if key == "sizeTypes" and isinstance(value, list) else [value]
        wrong = [v for v in values if v not in ENUMS[key]]
        return [f"{where} Invalid value {v!r}; expected one of {', '.join(ENUMS[key])}" for v in wrong]
    if key in TEXTS:
        if not isinstance(value, str):
            return [f"{where} must be a string"]
        if len(value) > TEXTS[key]:
            return [f"{where} is {len(value)} characters; the maximum is {TEXTS[key]}"]
    if key in LISTS and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return [f"{where} must be a list of strings"]
    if key == "gtins" and len(value) > 10:
        return [f"{where} holds {len(value)} values; the maximum is 10"]
    if key in BOOLEANS and not isinstance(value, bool):
        return [f"{where} must be true or false"]
    return []


def _price_problems(where: str, price: Any) -> list[str]:
    """``google.shopping.type.Price``: int64 micros (proto3 JSON: an integer or its string) and a currency."""
    if not isinstance(price, Mapping) or set(price) - {"amountMicros", "currencyCode"}:
        return [f"{where} must be {{amountMicros, currencyCode}}"]
    micros = price.get("amountMicros")
    problems = []
    if isinstance(micros, bool) or not (
        isinstance(micros, int) or (isinstance(micros, str) and re.fullmatch(r"-?\d+", micros))
    ):
        problems.append(f"{where}.amountMicros must be an integer (micros), got {micros!r}")
    elif int(micros) <= 0:
        problems.append(f"{where}.amountMicros must be greater than 0")
    if not re.fullmatch(r"[A-Z]{3}", str(price.get("currencyCode") or "")):
        problems.append(f"{where}.currencyCode must be an ISO 4217 code, got {price.get('currencyCode')!r}")
    return problems


def _mask_problems(paths: Iterable[str]) -> list[str]:
    paths = list(paths)
    if not paths:
        return [
            "[updateMask] name the fields to update (productAttributes.<field> or customAttributes.<name>)"
        ]
    problems = []
    for path in paths:
        group, _, field = path.partition(".")
        if group == "productAttributes" and field in PRODUCT_ATTRIBUTES:
            continue
        if group in ("customAttributes", "custom_attribute") and field:
            continue
        problems.append(
            f"[updateMask] Invalid field path {path!r}: only top-level productAttributes.<field> and "
            "customAttributes.<name> can be updated"
        )
    return problems
