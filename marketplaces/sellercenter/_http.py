"""SellerCenter API basics shared by the catalog connector, the order channel and their stand-ins.

SellerCenter is the platform Rocket Internet built and Dafiti, Falabella, Linio, Jumia and others
run under their own hosts (``shared/specs/dafiti/API.md``). Every call goes to the host's root,
the operation being the ``Action`` query parameter; reads are GET, writes POST an XML
``<Request>`` body; the signed parameters always travel in the query string.

What is here, and nothing about catalog or orders:

- **the signature** (API.md §2, exactly): every query parameter but ``Signature``, sorted by name
  in byte order, name and value percent-encoded per RFC 3986 (:func:`encode`), joined ``k=v`` with
  ``&`` (:func:`string_to_sign`); ``Signature`` is the lowercase hex HMAC-SHA256 of that string
  keyed with the API key (:func:`signature`), appended last (:func:`signed_query`). The common
  parameters (:func:`common_params`) are ``Action``, ``UserID``, ``Version=1.0``, ``Timestamp``
  (ISO 8601 with a ``+00:00`` offset, :func:`timestamp`) and ``Format``. The key never leaves
  this module's callers: no error, log line or plan carries it, and the signature itself is
  redacted from httpx's request log (:class:`SignatureFilter`, installed at import);
- **XML bodies** (:func:`request_xml`: ``<Request>`` of records, a list value repeating its tag,
  a mapping nesting) and **answers** parsed with defusedxml (:func:`parse_xml`: no DTD, no entity,
  so an answer cannot expand itself or read a file), read into plain data (:func:`xml_data`);
- **envelopes** (API.md §3): ``SuccessResponse{Head, Body}`` and
  ``ErrorResponse{Head{ErrorType, ErrorCode, ErrorMessage}, Body{ErrorDetail[]}}``, in XML or
  JSON, read by :func:`read_envelope` whatever the HTTP status (an ErrorResponse may come with
  200) and built by :func:`success_envelope`, :func:`error_envelope` and :func:`render` (the
  stand-ins' side);
- **error mapping** to the engine's outcomes (:func:`failure`, :class:`SellerCenterError`): 429,
  5xx, a garbled answer and an ``ErrorType`` of ``Platform`` may pass later; E007 (login or
  signature) is the credentials' fault and says so without naming the key; any other
  ErrorResponse is the request's;
- **feed spacing** (API.md §7): feed-creating actions (:data:`FEED_ACTIONS`) share one budget,
  :class:`FeedSlots` (the first ``free`` calls at once, then one per 2 minutes), on the slot clock
  the Mirakl connector uses (:class:`~marketplaces.mirakl._http.CallSlots`);
- :class:`SellerCenterSender`: one request, signed afresh for every attempt (a new Timestamp),
  paced, retried on 429, 5xx and lost connections under a :class:`~engine.connectors.RetryPolicy`,
  counted.

Stand-in side: a SellerCenter stand-in dispatches on ``Action``. After checking the signature it
looks the action up in a table ``action name -> ActionHandler``; a handler gets an
:class:`ActionCall` (the action, the query parameters, the parsed XML body or None, the
request) and returns the ``Body`` content of a SuccessResponse (a mapping, or None for an empty
body), or raises :class:`ActionRefused` for an ErrorResponse. An order desk joins a stand-in by
exposing ``actions() -> Mapping[str, ActionHandler]`` (and, as on the other stand-ins,
``routes()`` for sandbox controls); see ``marketplaces/sellercenter/standin.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import defusedxml.ElementTree as SafeET
import httpx
from defusedxml import DefusedXmlException
from starlette.requests import Request

from engine import TradepostError
from engine.connectors import CallResult, RetryPolicy, TokenBucket, retry_after
from marketplaces.mirakl._http import CallSlots
from marketplaces.mirakl._http import MiraklClock as SlotClock

VERSION = "1.0"
FEED_ACTIONS = frozenset({"ProductCreate", "ProductUpdate", "ProductRemove", "Image"})
"""Actions that create a feed (API.md §5): answered with a feed id, processed later."""
FEED_SLOT = "feed"
FEED_INTERVAL = 120.0
"""Documented seconds between two feed-creating calls once the free ones are spent (API.md §7,
Falabella's instance; Dafiti's own numbers are not public)."""
FREE_FEED_CALLS = 50
SIGNATURE_ERROR = "E007"
"""Login failed / signature mismatch (API.md §2, §3)."""
XML_TYPE = "application/xml"
JSON_TYPE = "application/json"


class SellerCenterError(TradepostError):
    """A SellerCenter call failed in a way the caller cannot read an outcome from."""

    def __init__(self, message: str, retryable: bool, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


# -- the signature (API.md §2) -------------------------------------------------------------------


def encode(text: str) -> str:
    """RFC 3986 percent-encoding (PHP ``rawurlencode``): unreserved characters stay, the rest
    becomes ``%XX`` in uppercase hex; a space is ``%20``."""
    return quote(text, safe="~")


def string_to_sign(params: Mapping[str, str]) -> str:
    """Every parameter but ``Signature``, sorted by name (byte order), encoded, ``k=v`` joined by ``&``."""
    pairs = sorted(((k, v) for k, v in params.items() if k != "Signature"), key=lambda p: p[0].encode())
    return "&".join(f"{encode(name)}={encode(value)}" for name, value in pairs)


def signature(params: Mapping[str, str], api_key: str) -> str:
    """Lowercase hex HMAC-SHA256 of :func:`string_to_sign`, keyed with the API key (UTF-8)."""
    digest = hmac.new(api_key.encode("utf-8"), string_to_sign(params).encode("utf-8"), hashlib.sha256)
    return digest.hexdigest()


def signed_query(params: Mapping[str, str], api_key: str) -> str:
    """The query string sent: the signed pairs as encoded, then ``Signature``."""
    return f"{string_to_sign(params)}&Signature={signature(params, api_key)}"


def signed_params(
    action: str, user_id: str, api_key: str, extra: Mapping[str, str] | None = None, fmt: str = "XML"
) -> dict[str, str]:
    """The common and the action's parameters with their ``Signature`` (for a client that encodes
    the query itself: the server decodes before it signs, so any correct encoding matches)."""
    params = common_params(action, user_id, extra, fmt)
    return {**params, "Signature": signature(params, api_key)}


def signature_matches(params: Mapping[str, str], api_key: str) -> bool:
    """Whether the request's ``Signature`` is the one its other parameters and the key give."""
    given = params.get("Signature", "")
    return hmac.compare_digest(given.encode(), signature(params, api_key).encode())


def timestamp(now: datetime | None = None) -> str:
    """ISO 8601 in UTC with the offset written ``+00:00`` (``2015-07-01T11:11:11+00:00``)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return moment.isoformat()


def common_params(
    action: str,
    user_id: str,
    extra: Mapping[str, str] | None = None,
    fmt: str = "XML",
    now: datetime | None = None,
) -> dict[str, str]:
    """``Action``, ``UserID``, ``Version``, ``Timestamp``, ``Format`` and the action's own parameters."""
    return {
        "Action": action,
        "UserID": user_id,
        "Version": VERSION,
        "Timestamp": timestamp(now),
        "Format": fmt,
        **(extra or {}),
    }


_SIGNATURE = re.compile(r"(Signature=)[0-9A-Fa-f]+")


def redact(text: str) -> str:
    """``text`` with any ``Signature=<hex>`` replaced (a URL in a message or a log line)."""
    return _SIGNATURE.sub(r"\1<redacted>", text)


class SignatureFilter(logging.Filter):
    """Redacts signatures from log records: httpx logs every request's URL at INFO. A signature
    reveals nothing of the key, but a logged one could be replayed until its Timestamp expires."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and any("Signature=" in str(arg) for arg in record.args):
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(str(a)) if "Signature=" in str(a) else a for a in args)
        if isinstance(record.msg, str) and "Signature=" in record.msg:
            record.msg = redact(record.msg)
        return True


_HTTPX_LOG = logging.getLogger("httpx")
if not any(isinstance(f, SignatureFilter) for f in _HTTPX_LOG.filters):
    _HTTPX_LOG.addFilter(SignatureFilter())


# -- XML -----------------------------------------------------------------------------------------


def request_xml(records: Sequence[Mapping[str, Any]], tag: str) -> bytes:
    """``<Request>`` holding one ``<tag>`` element per record (UTF-8, with the XML declaration)."""
    root = ET.Element("Request")
    for record in records:
        _fill(ET.SubElement(root, tag), record)
    return _document(root)


def _document(root: ET.Element) -> bytes:
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _fill(element: ET.Element, value: Any) -> None:
    """A mapping nests (a list value repeats its tag); anything else is the element's text."""
    if isinstance(value, Mapping):
        for name, child in value.items():
            for item in child if isinstance(child, list | tuple) else [child]:
                if item is not None:
                    _fill(ET.SubElement(element, str(name)), item)
        return
    element.text = text_of(value)


def text_of(value: Any) -> str:
    """A value as SellerCenter writes it: decimals plain (``199.90``), booleans lowercase, lists
    comma-separated."""
    if isinstance(value, list | tuple):
        return ", ".join(text_of(item) for item in value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def decimal_of(value: Any) -> Decimal | None:
    """A number as SellerCenter writes it (text, in XML and JSON alike); None when absent or not one."""
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def parse_xml(content: bytes | str) -> ET.Element:
    """An XML document parsed safely (defusedxml, DTDs forbidden); ValueError when it is not one."""
    try:
        root: ET.Element = SafeET.fromstring(content, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise ValueError(f"not a safe XML document: {exc}") from None
    return root


def xml_data(element: ET.Element) -> Any:
    """An element as plain data: text for a leaf; else a dict of its children, a repeated tag a list."""
    children = list(element)
    if not children:
        return (element.text or "").strip()
    data: dict[str, Any] = {}
    for child in children:
        value = xml_data(child)
        if child.tag in data:
            existing = data[child.tag]
            data[child.tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            data[child.tag] = value
    return data


def as_list(value: Any) -> list[Any]:
    """A repeated element's values: XML gives one value for one element, a list for several."""
    if value in (None, ""):
        return []
    return list(value) if isinstance(value, list) else [value]


# -- envelopes (API.md §3) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """A SellerCenter answer: a SuccessResponse or an ErrorResponse, its Head and Body."""

    ok: bool
    head: Mapping[str, Any]
    body: Any

    @property
    def request_id(self) -> str:
        """The feed id, for a feed-creating action."""
        return str(self.head.get("RequestId") or "")

    @property
    def code(self) -> str:
        return str(self.head.get("ErrorCode") or "")

    @property
    def message(self) -> str:
        return str(self.head.get("ErrorMessage") or "")

    @property
    def details(self) -> list[dict[str, Any]]:
        """The ErrorResponse's ``ErrorDetail`` items (``Field``, ``Message``, ``Value``, ``SellerSku``)."""
        body = self.body if isinstance(self.body, Mapping) else {}
        return [d for d in as_list(body.get("ErrorDetail")) if isinstance(d, dict)]

    def describe(self) -> str:
        """The error as one line: code, message, then each detail."""
        parts = [f"{self.code}: {self.message}".strip(": ")]
        parts += [
            " ".join(filter(None, (d.get("SellerSku"), d.get("Field"), d.get("Message"))))
            for d in self.details
        ]
        return redact("; ".join(p for p in parts if p))


def read_envelope(content: bytes | str) -> Envelope:
    """The envelope of an answer in XML or JSON; ValueError when it holds none."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped, parse_float=Decimal)
        except ValueError:
            raise ValueError("the answer is not JSON") from None
        kind = next((k for k in ("SuccessResponse", "ErrorResponse") if k in data), None)
        inner = data.get(kind) if kind and isinstance(data, dict) else None
    else:
        root = parse_xml(stripped)
        kind, inner = root.tag, xml_data(root)
    if kind not in ("SuccessResponse", "ErrorResponse") or not isinstance(inner, dict):
        raise ValueError("the answer is neither a SuccessResponse nor an ErrorResponse")
    head = inner.get("Head") if isinstance(inner.get("Head"), dict) else {}
    return Envelope(kind == "SuccessResponse", head or {}, inner.get("Body") or {})


def success_envelope(action: str, body: Any = None, request_id: str = "", now: str = "") -> dict[str, Any]:
    """A SuccessResponse: Head (``RequestId``: a feed's id), and the Body given."""
    head = {
        "RequestId": request_id,
        "RequestAction": action,
        "ResponseType": "",
        "Timestamp": now or timestamp(),
    }
    return {"SuccessResponse": {"Head": head, "Body": body or {}}}


def error_envelope(
    action: str, code: str, message: str, details: Sequence[Mapping[str, Any]] = (), kind: str = "Sender"
) -> dict[str, Any]:
    """An ErrorResponse: Head (``ErrorType``, ``ErrorCode``, ``ErrorMessage``), Body of ``ErrorDetail``."""
    head = {"RequestAction": action, "ErrorType": kind, "ErrorCode": code, "ErrorMessage": message}
    return {"ErrorResponse": {"Head": head, "Body": {"ErrorDetail": list(details)} if details else {}}}


def render(envelope: Mapping[str, Any], fmt: str) -> tuple[bytes, str]:
    """An envelope in the ``Format`` asked (``JSON``, else XML): the bytes and their media type."""
    if fmt.upper() == "JSON":
        return json.dumps(envelope, default=text_of, ensure_ascii=False).encode("utf-8"), JSON_TYPE
    ((tag, inner),) = envelope.items()
    root = ET.Element(tag)
    _fill(root, inner)
    return _document(root), XML_TYPE


# -- error mapping ---------------------------------------------------------------------------------


def may_pass_later(status: int) -> bool:
    """Throttling and server errors: the same call may pass later."""
    return status == 429 or status >= 500


def failure(response: httpx.Response, what: str = "") -> CallResult | None:
    """A refused or unreadable answer as an outcome; None when it is a SuccessResponse."""
    prefix = f"{what}: " if what else ""
    status = response.status_code
    try:
        envelope = read_envelope(response.content)
    except ValueError as exc:
        retry = may_pass_later(status) or 200 <= status < 300
        return CallResult(False, retryable=retry, error=f"{prefix}{status} unreadable answer ({exc})")
    if envelope.ok and 200 <= status < 300:
        return None
    reason = envelope.describe() or response.reason_phrase
    if envelope.code == SIGNATURE_ERROR:
        reason = (
            f"{reason}; check the user_id and api_key credentials (and the clock: the Timestamp is signed)"
        )
    retry = may_pass_later(status) or str(envelope.head.get("ErrorType", "")).lower() == "platform"
    return CallResult(False, retryable=retry, error=f"{prefix}{status} {reason}")


def answer_of(response: httpx.Response, what: str) -> Envelope:
    """The SuccessResponse of an answer; a :class:`SellerCenterError` (retryable as
    :func:`failure` says, with the ErrorCode) otherwise."""
    failed = failure(response, what)
    if failed is None:
        return read_envelope(response.content)
    with contextlib.suppress(ValueError):
        raise SellerCenterError(failed.error or what, failed.retryable, read_envelope(response.content).code)
    raise SellerCenterError(failed.error or what, failed.retryable)


# -- feed spacing (API.md §7) ----------------------------------------------------------------------


@dataclass
class FeedSlots:
    """The seller's budget of feed-creating calls: ``free`` at once, then one per ``interval``.

    :meth:`wait_turn` answers 0 once the call may go (its turn taken), else the documented seconds
    still to wait when that is more than ``max_wait``: the caller defers the work, sending it with
    whatever changes until then at the next turn. One process's view: another process's feeds
    meet SellerCenter's 429 instead, which the sender waits out or defers likewise.
    """

    clock: SlotClock = field(default_factory=SlotClock)
    free: int = FREE_FEED_CALLS
    interval: float = FEED_INTERVAL
    used: int = 0
    slots: CallSlots = field(init=False)

    def __post_init__(self) -> None:
        self.slots = CallSlots(self.clock, {FEED_SLOT: self.interval})

    async def wait_turn(self, max_wait: float = float("inf")) -> float:
        if self.used < self.free:
            self.used += 1
            return 0.0
        left = await self.slots.wait_turn(FEED_SLOT, max_wait)
        self.used += not left
        return left


# -- sending ---------------------------------------------------------------------------------------


@dataclass
class SellerCenterSender:
    """The client's own requests: signed with the key for ``user_id``, retried, counted."""

    client: httpx.AsyncClient
    user_id: str
    api_key: str
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=5, base=0.5, cap=30.0))
    patience: float = 60.0
    """Real seconds a 429's Retry-After may ask to wait; asked for longer, the 429 is the answer."""
    user_agent: str = ""
    """``<SellerId>/<language>/<version>``, as Falabella requires (harmless elsewhere)."""
    pacer: TokenBucket | None = None
    """Every attempt waits its turn here (the seller's request rate), when given."""
    count: int = 0
    retries: int = 0

    async def send(
        self, action: str, params: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> httpx.Response:
        """The last answer (a POST when there is a body); the transport error when none came."""
        headers = {"Content-Type": XML_TYPE} if body is not None else {}
        if self.user_agent:
            headers["User-Agent"] = self.user_agent

        async def attempt(n: int) -> httpx.Response:
            if self.pacer is not None:
                await self.pacer.acquire()
            self.count += 1
            self.retries += n > 0
            query = signed_query(common_params(action, self.user_id, params), self.api_key)
            method = "GET" if body is None else "POST"
            return await self.client.request(method, f"/?{query}", headers=headers, content=body)

        def again(response: httpx.Response) -> bool:
            asked = retry_after(response) if response.status_code == 429 else None
            return self.retry.retryable(response) and (asked is None or asked <= self.patience)

        return await self.retry.run_async(attempt, retry_if=again)


# -- stand-in side -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionCall:
    """One signed call a stand-in dispatches: its action, query parameters, parsed body, request."""

    action: str
    params: Mapping[str, str]
    body: ET.Element | None
    request: Request


ActionHandler = Callable[[ActionCall], Awaitable[Any]]
"""A stand-in's handler of one action: the SuccessResponse's Body (None: empty), or
:class:`ActionRefused` raised."""


class ActionRefused(Exception):
    """An ErrorResponse a stand-in answers (HTTP ``status``, 400 by default, as SellerCenter's)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        details: Sequence[Mapping[str, Any]] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.details, self.retry_after = list(details), retry_after


__all__ = [
    "FEED_ACTIONS",
    "SIGNATURE_ERROR",
    "VERSION",
    "ActionCall",
    "ActionHandler",
    "ActionRefused",
    "Envelope",
    "FeedSlots",
    "SellerCenterError",
    "SellerCenterSender",
    "SignatureFilter",
    "SlotClock",
    "answer_of",
    "as_list",
    "common_params",
    "decimal_of",
    "encode",
    "error_envelope",
    "failure",
    "parse_xml",
    "read_envelope",
    "redact",
    "render",
    "request_xml",
    "signature",
    "signature_matches",
    "signed_params",
    "signed_query",
    "string_to_sign",
    "success_envelope",
    "text_of",
    "timestamp",
    "xml_data",
]
