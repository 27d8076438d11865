"""The dashboard's questions and returns: what `tradepost questions list` and `tradepost orders
returns` show from the state store, and the answer form of `tradepost questions answer`.

The page reads the state store only (`orders pull` keeps it fresh); an answer is posted as the CLI
posts it (:func:`cli._questions._answer`: the marketplace's lock, recorded before it is sent, read
back before any repeat, so at most once), with the marketplace called from a worker thread.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from cli._orders import _state_of
from cli._questions import _answer
from cli.dashboard._app import Dashboard, Fields, Handler, chosen_marketplaces, filtered_page, redirect
from engine import TradepostError
from engine.orders import AfterSalesStore, OrderStore, StoredQuestion, StoredReturn

ReturnRow = tuple[StoredReturn, str | None]
"""A return and the state of its order (None: the order is not in the state store)."""


def _after_sales(
    dashboard: Dashboard, names: list[str], unanswered: bool
) -> tuple[list[StoredQuestion], list[ReturnRow]]:
    store = AfterSalesStore(dashboard.store)
    orders = OrderStore(dashboard.store)
    returns = [(row, _state_of(orders, row.marketplace, row.order_id)) for row in store.returns(names)]
    return store.questions(names, unanswered=unanswered), returns


async def after_sales(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    unanswered = fields.get("unanswered") == "1"
    names = chosen_marketplaces(dashboard, fields)
    questions, returns = await dashboard.run(_after_sales, dashboard, names, unanswered)
    return filtered_page(
        dashboard,
        request,
        fields,
        "aftersales.html",
        questions=questions,
        returns=returns,
        unanswered=unanswered,
    )


def _answered(dashboard: Dashboard, marketplace: str, question_id: str, text: str) -> bool:
    """Post the answer as `tradepost questions answer` does; whether it was sent (False: the
    marketplace already showed an answer)."""
    outcome = asyncio.run(_answer(dashboard.project, dashboard.store, marketplace, question_id, text))
    return bool(outcome.sent)


async def answer(dashboard: Dashboard, request: Request, fields: Fields) -> Response:
    marketplace, question_id = request.path_params["marketplace"], request.path_params["question_id"]
    back = f"/aftersales?marketplace={quote(marketplace)}"
    try:
        sent = await dashboard.run(_answered, dashboard, marketplace, question_id, fields.get("text", ""))
    except TradepostError as exc:
        return redirect(back, ("error", f"Question {question_id}: {exc}"), request)
    done = "answered" if sent else "already answered on the marketplace: nothing sent"
    return redirect(back, ("ok", f"Question {question_id} {done}."), request)


AFTER_SALES_PAGES: dict[str, tuple[Handler, str]] = {
    "/aftersales": (after_sales, "GET"),
    "/questions/{marketplace}/{question_id}/answer": (answer, "POST"),
}
