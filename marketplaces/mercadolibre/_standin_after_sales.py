"""The Mercado Libre stand-in's after-sales desk: claims with their returns, and buyers' questions.

A component the stand-in owns, beside its order desk, given only what it needs (the orders, the
seller's items, the seller id, the token check and the clock). What it serves and checks:

- ``GET /post-purchase/v1/claims/search``: ``resource``, ``status`` (opened, closed),
  ``offset``/``limit`` (at most 100), newest first; ``GET /post-purchase/v1/claims/{id}``;
  ``GET /post-purchase/v2/claims/{id}/returns`` (404 for a claim without a return).
- ``GET /questions/search?seller_id=``: the seller must be the token's user (403); ``status``
  (UNANSWERED, ANSWERED), ``offset``/``limit`` (at most 50), oldest first; ``GET /questions/{id}``.
- ``POST /answers`` ``{question_id, text}``: text of 1 to 2,000 characters; a question answered
  already is refused (400), as Mercado Libre allows one answer. :attr:`answers_posted` counts the
  answers accepted, so a test sees an answer sent once.

Buyers are played by :meth:`AfterSalesDesk.open_claim` and :meth:`AfterSalesDesk.ask`, and by the
sandbox's controls ``POST /_sandbox/claims`` ``{order_id, reason_id?, with_return?}`` and
``POST /_sandbox/questions`` ``{item_id | sku_id, text}``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from marketplaces._standin import exact_json as _json
from marketplaces._standin import look_up, sandbox_route
from marketplaces.mercadolibre._standin_order_desk import ML_TIME, _missing, _whole
from marketplaces.mercadolibre._standin_shapes import Refusal
from marketplaces.mercadolibre._standin_shapes import object_body as _body

__all__ = ["AfterSalesDesk"]

CLAIMS_LIMIT = 100
QUESTIONS_LIMIT = 50
ANSWER_MAX = 2000


class AfterSalesDesk:
    """Claims, returns and questions of one Mercado Libre seller."""

    def __init__(
        self,
        orders: Mapping[str, dict[str, Any]],
        items: Mapping[str, dict[str, Any]],
        *,
        seller_id: int,
        authorize: Callable[[Request], None],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.orders, self.items, self.seller_id, self._authorize = orders, items, seller_id, authorize
        self.clock = clock or (lambda: datetime.now(UTC))
        self.claims: dict[str, dict[str, Any]] = {}
        self.returns: dict[str, dict[str, Any]] = {}
        """Claim id -> its return, as ``GET /post-purchase/v2/claims/{id}/returns`` shows it."""
        self.questions: dict[str, dict[str, Any]] = {}
        self.answers_posted = 0
        self.faults_next: dict[str, list[str]] = {"answer": [], "question": []}
        """Misbehaviour of the next ``POST /answers`` / ``GET /questions/{id}`` calls, one per
        call: ``500`` (refused before anything is done), ``500-after`` (the answer is recorded, then
        500: an answer lost on its way back), ``garbage`` (200 with a body that is not JSON)."""
        self._claim_ids = itertools.count(5000000001)
        self._return_ids = itertools.count(31000001)
        self._question_ids = itertools.count(13000000001)
        self._buyer_ids = itertools.count(1300000001)

    def routes(self) -> list[Route]:
        return [
            Route("/post-purchase/v1/claims/search", self.search_claims, methods=["GET"]),
            Route("/post-purchase/v1/claims/{claim_id}", self.get_claim, methods=["GET"]),
            Route("/post-purchase/v2/claims/{claim_id}/returns", self.get_return, methods=["GET"]),
            Route("/questions/search", self.search_questions, methods=["GET"]),
            Route("/questions/{question_id}", self.get_question, methods=["GET"]),
            Route("/answers", self.post_answer, methods=["POST"]),
            sandbox_route("claims", self.sandbox_claim),
            sandbox_route("questions", self.sandbox_question),
        ]

    # -- buyers: made by tests and the sandbox ---------------------------------------------------

    def open_claim(self, order_id: str, reason_id: str = "PDD9549", *, with_return: bool = True) -> str:
        """The buyer claims about a sale (different or defective by default); with a return, the
        goods come back. Returns the claim id."""
        order = self.orders.get(str(order_id))
        if order is None:
            raise ValueError(f"no order {order_id}")
        now = self._stamp()
        claim_id = str(next(self._claim_ids))
        self.claims[claim_id] = {
            "id": int(claim_id),
            "resource_id": order["id"],
            "status": "opened",
            "type": "mediations",
            "stage": "claim",
            "parent_id": None,
            "resource": "order",
            "reason_id": reason_id,
            "fulfilled": True,
            "quantity_type": "total",
            "players": [
                {"role": "complainant", "type": "buyer", "user_id": order["buyer"]["id"]},
                {"role": "respondent", "type": "seller", "user_id": self.seller_id},
            ],
            "resolution": None,
            "site_id": order["context"]["site"],
            "date_created": now,
            "last_updated": now,
            "related_entities": ["return"] if with_return else [],
        }
        if with_return:
            self.returns[claim_id] = {
                "id": next(self._return_ids),
                "claim_id": int(claim_id),
                "type": "claim",
                "subtype": "return_total",
                "status": "opened",
                "status_money": "retained",
                "resource_type": "order",
                "orders": [
                    {
                        "order_id": order["id"],
                        "item_id": line["item"]["id"],
                        "variation_id": line["item"].get("variation_id"),
                        "context_type": "return",
                        "total_quantity": line["quantity"],
                        "return_quantity": line["quantity"],
                    }
                    for line in order["order_items"]
                ],
                "date_created": now,
                "last_updated": now,
            }
        return claim_id

    def set_return_status(self, claim_id: str, status: str) -> None:
        """The return moves on (shipped, delivered, closed, cancelled...); its claim is touched."""
        self.returns[str(claim_id)]["status"] = status
        self.returns[str(claim_id)]["last_updated"] = self.claims[str(claim_id)]["last_updated"] = (
            self._stamp()
        )
        if status in ("closed", "cancelled", "expired"):
            self.claims[str(claim_id)]["status"] = "closed"

    def ask(self, item_id: str, text: str) -> str:
        """A buyer asks on a listing; returns the question id."""
        if item_id not in self.items:
            raise ValueError(f"no item {item_id}")
        question_id = str(next(self._question_ids))
        self.questions[question_id] = {
            "id": int(question_id),
            "item_id": item_id,
            "seller_id": self.seller_id,
            "status": "UNANSWERED",
            "text": text,
            "date_created": self._stamp(),
            "deleted_from_listing": False,
            "hold": False,
            "suspected_spam": False,
            "answer": None,
            "from": {"id": next(self._buyer_ids)},
        }
        return question_id

    def answer_on_site(self, question_id: str, text: str) -> None:
        """The seller answers on Mercado Libre's site, not through Tradepost."""
        self._answer(self.questions[str(question_id)], text)

    # -- the API -------------------------------------------------------------------------------

    async def search_claims(self, request: Request) -> Response:
        self._authorize(request)
        query = request.query_params
        offset, limit = _whole(query, "offset", 0), _whole(query, "limit", 30)
        if not 1 <= limit <= CLAIMS_LIMIT:
            raise Refusal(400, "bad_request", f"limit must be between 1 and {CLAIMS_LIMIT}")
        found = [
            claim
            for claim in self.claims.values()
            if all(str(claim[key]) == query[key] for key in ("status", "resource", "stage") if key in query)
        ]
        found.sort(key=lambda claim: claim["date_created"], reverse=True)
        return _json(
            {
                "paging": {"offset": offset, "limit": limit, "total": len(found)},
                "data": found[offset : offset + limit],
            }
        )

    async def get_claim(self, request: Request) -> Response:
        self._authorize(request)
        return _json(look_up(self.claims, request.path_params["claim_id"], _missing("Claim")))

    async def get_return(self, request: Request) -> Response:
        self._authorize(request)
        return _json(look_up(self.returns, request.path_params["claim_id"], _missing("Return of claim")))

    async def search_questions(self, request: Request) -> Response:
        self._authorize(request)
        query = request.query_params
        if query.get("seller_id") != str(self.seller_id):
            raise Refusal(403, "forbidden", "caller.id does not match the seller_id of the search")
        offset, limit = _whole(query, "offset", 0), _whole(query, "limit", 50)
        if not 1 <= limit <= QUESTIONS_LIMIT:
            raise Refusal(400, "bad_request", f"limit must be between 1 and {QUESTIONS_LIMIT}")
        status = query.get("status")
        found = [q for q in self.questions.values() if status is None or q["status"] == status]
        return _json({"total": len(found), "limit": limit, "questions": found[offset : offset + limit]})

    async def get_question(self, request: Request) -> Response:
        self._authorize(request)
        fault = self._fault("question")
        if fault is not None:
            return fault
        return _json(look_up(self.questions, request.path_params["question_id"], _missing("Question")))

    async def post_answer(self, request: Request) -> Response:
        self._authorize(request)
        body = await _body(request)
        question = self.questions.get(str(body.get("question_id")))
        if question is None:
            raise Refusal(404, "not_found", f"Question {body.get('question_id')} not found")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > ANSWER_MAX:
            raise Refusal(400, "bad_request", f"text must have 1 to {ANSWER_MAX} characters")
        fault = self.faults_next["answer"].pop(0) if self.faults_next["answer"] else None
        if fault == "500":
            return _broken(fault)
        if question["status"] != "UNANSWERED":
            raise Refusal(400, "bad_request", "The question is already answered")
        self._answer(question, text)
        self.answers_posted += 1
        return _broken(fault) if fault else _json(question)

    def _fault(self, call: str) -> Response | None:
        return _broken(self.faults_next[call].pop(0)) if self.faults_next[call] else None

    # -- the sandbox's controls ------------------------------------------------------------------

    async def sandbox_claim(self, request: Request) -> Response:
        """``POST /_sandbox/claims`` ``{order_id, reason_id?, with_return?}``."""
        body = await _body(request)
        try:
            claim_id = self.open_claim(
                str(body.get("order_id")),
                str(body.get("reason_id") or "PDD9549"),
                with_return=bool(body.get("with_return", True)),
            )
        except ValueError as refused:
            raise Refusal(400, "bad_request", str(refused)) from None
        return _json({"claim_id": claim_id}, 201)

    async def sandbox_question(self, request: Request) -> Response:
        """``POST /_sandbox/questions`` ``{item_id | sku_id, text}``."""
        body = await _body(request)
        item_id = body.get("item_id") or self._item_of(str(body.get("sku_id")))
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Refusal(400, "bad_request", "give the question's text")
        try:
            question_id = self.ask(str(item_id), text)
        except ValueError as refused:
            raise Refusal(400, "bad_request", str(refused)) from None
        return _json({"question_id": question_id}, 201)

    # -- state -----------------------------------------------------------------------------------

    def _answer(self, question: dict[str, Any], text: str) -> None:
        question["status"] = "ANSWERED"
        question["answer"] = {"text": text, "status": "ACTIVE", "date_created": self._stamp()}

    def _item_of(self, sku_id: str) -> str | None:
        """The item listing ``sku_id`` (its SELLER_SKU, or a variation's)."""
        for item_id, item in self.items.items():
            holders = [item, *(item.get("variations") or [])]
            for holder in holders:
                for attribute in holder.get("attributes") or []:
                    if attribute.get("id") == "SELLER_SKU" and str(attribute.get("value_name")) == sku_id:
                        return item_id
        return None

    def _stamp(self) -> str:
        return self.clock().astimezone(ML_TIME).isoformat(timespec="milliseconds")


def _broken(fault: str) -> Response:
    """A planned misbehaviour's answer: garbage (200, not JSON), or a 500 in Mercado Libre's shape."""
    if fault == "garbage":
        return Response("<html>upstream error</html>", status_code=200, media_type="text/html")
    return _json(Refusal(500, "internal_error", "Internal server error").body(), 500)
