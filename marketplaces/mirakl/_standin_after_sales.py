"""The Mirakl stand-in's after-sales desk: returns (RT11) and customer message threads (M10, M11, M12).

A component the stand-in owns beside its order desk, given the orders, the request check and the
clock. What it serves and checks (``shared/specs/mirakl``: the OpenAPI file, SOURCE.md):

- ``GET /api/returns`` (RT11): ``return_last_updated_from``, seek paging (``limit`` at most 100,
  ``page_token``); each return ``{id, order_id, order_commercial_id, reason_code, state,
  return_lines[], date_created, last_updated}``.
- ``GET /api/inbox/threads`` (M11): ``entity_type``, ``entity_id``, ``updated_since``,
  ``with_messages``, seek paging; ``GET /api/inbox/threads/{id}`` (M10).
- ``POST /api/inbox/threads/{id}/message`` (M12): multipart ``message_input`` JSON with a
  ``body`` of 3 to 50,000 characters and a ``to`` naming the thread's participants; 201
  ``{message_id, thread_id}``. :attr:`replies_posted` counts them, so a test sees a reply sent once.

The customer is played by :meth:`MiraklAfterSalesDesk.open_return` and
:meth:`~MiraklAfterSalesDesk.customer_writes`, and by the sandbox's controls
``POST /_sandbox/returns`` ``{order_id, reason_code?}`` and ``POST /_sandbox/threads``
``{order_id, body}``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from marketplaces._standin import exact_json, look_up, sandbox_route
from marketplaces.mirakl._standin_order_desk import OrderRefusal, _form_parts, _moment, _object, _whole

__all__ = ["MiraklAfterSalesDesk"]

PAGE_MAX = 100
RETURN_STATES = (
    "WAITING_ACCEPTANCE",
    "IN_PROGRESS",
    "REFUSED",
    "RECEIVED",
    "NO_RECEPTION",
    "CLOSED",
    "CANCELED",
)
BODY_LENGTH = (3, 50000)


class MiraklAfterSalesDesk:
    """Returns and message threads of one Mirakl shop."""

    def __init__(
        self,
        orders: Mapping[str, dict[str, Any]],
        *,
        authorize: Callable[[Request], None],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.orders, self._authorize = orders, authorize
        self.clock = clock or (lambda: datetime.now(UTC))
        self.returns: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, dict[str, Any]] = {}
        self.replies_posted = 0
        self._message_ids = itertools.count(1)

    def routes(self) -> list[Route]:
        return [
            Route("/api/returns", self.list_returns, methods=["GET"]),
            Route("/api/inbox/threads", self.list_threads, methods=["GET"]),
            Route("/api/inbox/threads/{thread_id}", self.get_thread, methods=["GET"]),
            Route("/api/inbox/threads/{thread_id}/message", self.reply, methods=["POST"]),
            sandbox_route("returns", self.sandbox_return),
            sandbox_route("threads", self.sandbox_thread),
        ]

    # -- the customer: tests and the sandbox ---------------------------------------------------

    def open_return(
        self, order_id: str, reason_code: str = "RETURN_BROKEN_ITEM", state: str = "WAITING_ACCEPTANCE"
    ) -> str:
        """The customer asks to send an order's lines back; returns the return id (a UUID)."""
        order = self.orders.get(order_id)
        if order is None:
            raise ValueError(f"no order {order_id}")
        if state not in RETURN_STATES:
            raise ValueError(f"state must be one of {', '.join(RETURN_STATES)}")
        now = self._stamp()
        return_id = str(uuid.uuid4())
        self.returns[return_id] = {
            "id": return_id,
            "order_id": order_id,
            "order_commercial_id": order_id.rsplit("-", 1)[0],
            "reason_code": reason_code,
            "state": state,
            "method_code": "RETURN_METHOD_BY_MAIL",
            "return_lines": [
                {
                    "order_line_id": line["order_line_id"],
                    "quantity": line["quantity"],
                    "reason_code": reason_code,
                }
                for line in order["order_lines"]
            ],
            "date_created": now,
            "last_updated": now,
        }
        return return_id

    def set_return_state(self, return_id: str, state: str) -> None:
        self.returns[return_id].update(state=state, last_updated=self._stamp())

    def customer_writes(self, order_id: str, body: str, thread_id: str | None = None) -> str:
        """The customer writes about an order (in a new thread, or ``thread_id``); the thread id."""
        order = self.orders.get(order_id)
        if order is None:
            raise ValueError(f"no order {order_id}")
        if thread_id is None:
            thread_id = str(uuid.uuid4())
            customer = {
                "type": "CUSTOMER",
                "id": order["customer"]["customer_id"],
                "display_name": "Customer",
            }
            self.threads[thread_id] = {
                "id": thread_id,
                "entities": [{"type": "MMP_ORDER", "id": order_id, "label": order_id}],
                "current_participants": [customer, {"type": "SHOP", "id": "2001", "display_name": "Shop"}],
                "authorized_participants": [],
                "topic": {"type": "FREE_TEXT", "value": "Question about the order"},
                "messages": [],
                "date_created": self._stamp(),
            }
        self._add(self.threads[thread_id], "CUSTOMER_USER", body)
        return thread_id

    # -- the API -------------------------------------------------------------------------------

    async def list_returns(self, request: Request) -> Response:
        self._authorize(request)
        since = _moment(request.query_params, "return_last_updated_from")
        found = [r for r in self.returns.values() if since is None or _at(r["last_updated"]) >= since]
        return self._page(request, sorted(found, key=lambda r: r["last_updated"]))

    async def list_threads(self, request: Request) -> Response:
        self._authorize(request)
        query = request.query_params
        since = _moment(query, "updated_since")
        entity_type, entity_ids = query.get("entity_type"), query.get("entity_id")
        found = [
            t
            for t in self.threads.values()
            if (since is None or _at(t["date_updated"]) >= since)
            and (entity_type is None or any(e["type"] == entity_type for e in t["entities"]))
            and (entity_ids is None or any(e["id"] in entity_ids.split(",") for e in t["entities"]))
        ]
        with_messages = query.get("with_messages") == "true"
        shown = [t if with_messages else {k: v for k, v in t.items() if k != "messages"} for t in found]
        return self._page(request, sorted(shown, key=lambda t: t["date_updated"]))

    async def get_thread(self, request: Request) -> Response:
        self._authorize(request)
        return exact_json(look_up(self.threads, request.path_params["thread_id"], _missing))

    async def reply(self, request: Request) -> Response:
        """M12: the shop's reply, as multipart ``message_input``."""
        self._authorize(request)
        thread = look_up(self.threads, request.path_params["thread_id"], _missing)
        parts = {field: payload for field, _, payload in _form_parts(request, await request.body())}
        try:
            message = json.loads(parts["message_input"])
        except (KeyError, ValueError):
            raise OrderRefusal(400, "message_input is missing or not JSON") from None
        body, to = message.get("body"), message.get("to")
        if not isinstance(body, str) or not BODY_LENGTH[0] <= len(body) <= BODY_LENGTH[1]:
            raise OrderRefusal(400, f"body must have {BODY_LENGTH[0]} to {BODY_LENGTH[1]} characters")
        participants = {(p["type"], p["id"]) for p in thread["current_participants"]}
        if (
            not isinstance(to, list)
            or not to
            or any((r.get("type"), r.get("id")) not in participants for r in to)
        ):
            raise OrderRefusal(400, "to must name the thread's participants")
        message_id = self._add(thread, "SHOP_USER", body)
        self.replies_posted += 1
        return exact_json({"message_id": message_id, "thread_id": thread["id"]}, 201)

    # -- the sandbox's controls ----------------------------------------------------------------

    async def sandbox_return(self, request: Request) -> Response:
        """``POST /_sandbox/returns`` ``{order_id, reason_code?}``."""
        body = await _object(request)
        try:
            return_id = self.open_return(
                str(body.get("order_id")), str(body.get("reason_code") or "RETURN_BROKEN_ITEM")
            )
        except ValueError as refused:
            raise OrderRefusal(400, str(refused)) from None
        return exact_json({"return_id": return_id}, 201)

    async def sandbox_thread(self, request: Request) -> Response:
        """``POST /_sandbox/threads`` ``{order_id, body}``."""
        body = await _object(request)
        text = body.get("body")
        if not isinstance(text, str) or not text.strip():
            raise OrderRefusal(400, "give the message's body")
        try:
            thread_id = self.customer_writes(str(body.get("order_id")), text)
        except ValueError as refused:
            raise OrderRefusal(400, str(refused)) from None
        return exact_json({"thread_id": thread_id}, 201)

    # -- state -----------------------------------------------------------------------------------

    def _add(self, thread: dict[str, Any], sender: str, body: str) -> str:
        now = self._stamp()
        message_id = f"M{next(self._message_ids):06d}"
        thread["messages"].append(
            {"id": message_id, "body": body, "date_created": now, "from": {"type": sender}, "attachments": []}
        )
        thread["date_updated"] = now
        thread["metadata"] = {
            "last_message_date": now,
            "total_count": len(thread["messages"]),
            "shop_reply_needed_since": now if sender == "CUSTOMER_USER" else None,
        }
        return message_id

    def _page(self, request: Request, found: list[dict[str, Any]]) -> Response:
        limit = _whole(request.query_params, "limit", 10)
        if not 1 <= limit <= PAGE_MAX:
            raise OrderRefusal(400, f"limit must be between 1 and {PAGE_MAX}")
        start = _whole(request.query_params, "page_token", 0)
        page: dict[str, Any] = {"data": found[start : start + limit]}
        if start + limit < len(found):
            page["next_page_token"] = str(start + limit)
        return exact_json(page)

    def _stamp(self) -> str:
        return self.clock().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _missing(key: str) -> OrderRefusal:
    return OrderRefusal(404, f"thread {key} not found", "NOT_FOUND")
