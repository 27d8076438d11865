"""Customer questions: listed from the stand-ins, answered once whatever fails, is re-run or killed.

Over both state backends: a Mercado Libre question and a Mirakl (Carrefour) message thread are
listed and answered once; the same command again sends nothing. Answer text is checked before any
call (empty, too long). A marketplace answering 500, losing the answer on its way back, or
answering garbage gives a clear message and loses nothing: the answer is kept and the next run
reads the question back before it sends. Over loopback, the CLI does the same, and a run killed
right after the marketplace took the answer is finished by the next without a second answer.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from engine.connectors import OrderChannel
from engine.orders import AfterSalesError, AfterSalesStore, answer_question, pull_questions
from engine.state import StateStore
from marketplaces.mirakl.standin import MiraklStandin
from marketplaces.sandbox import Sandbox
from tests import test_returns
from tests._harness import Loopback, run_apply, subset, tradepost, tradepost_process, write_project
from tests.test_mercadolibre_orders import Shop
from tests.test_mercadolibre_orders import run as run_ml
from tests.test_returns import run_mirakl

ML = "mercadolibre"
server, url = test_returns.server, test_returns.url  # the fixtures: each test on both backends


async def ask_and_pull(url: str, shop: Shop, text: str = "Tem na cor azul?") -> str:
    item_id = await shop.list_item("SKU-1")
    question_id = shop.standin.after_sales.ask(item_id, text)
    with StateStore(url) as state:
        summary = await pull_questions(AfterSalesStore(state), ML, shop.channel)
    assert (summary.read, summary.new) == (1, 1)
    return question_id


async def answer(url: str, channel: OrderChannel, question_id: str, text: str, marketplace: str = ML) -> Any:
    with StateStore(url) as state:
        return await answer_question(AfterSalesStore(state), marketplace, channel, question_id, text)


def question(url: str, question_id: str, marketplace: str = ML) -> Any:
    with StateStore(url) as state:
        return AfterSalesStore(state).question(marketplace, question_id)


def test_a_question_is_listed_and_answered_once_and_a_rerun_sends_nothing(url: str) -> None:
    async def scenario(shop: Shop) -> list[Any]:
        question_id = await ask_and_pull(url, shop)
        with StateStore(url) as state:
            (listed,) = AfterSalesStore(state).questions([ML], unanswered=True)
        calls = shop.standin.total_requests()
        first = await answer(url, shop.channel, question_id, "  Sim, temos azul.  ")
        answering = shop.standin.total_requests() - calls  # the read-back, then the answer
        again = await answer(url, shop.channel, question_id, "Sim, temos azul.")
        assert (answering, shop.standin.total_requests() - calls) == (2, 2)  # the repeat calls nothing
        with StateStore(url) as state:
            repulled = await pull_questions(AfterSalesStore(state), ML, shop.channel)
            left = AfterSalesStore(state).questions([ML], unanswered=True)
        return [listed, first, again, repulled, left, shop.standin.after_sales]

    listed, first, again, repulled, left, desk = run_ml(scenario)
    assert listed.text == "Tem na cor azul?" and listed.state == "unanswered"
    assert "from" not in json.dumps(listed.to_dict())  # the asker's id is never kept
    assert first.sent and first.question.answer == "Sim, temos azul."
    assert first.question.answered_by == "tradepost"
    assert not again.sent
    assert repulled.new == 0 and left == []
    assert desk.answers_posted == 1
    (only,) = desk.questions.values()
    assert only["answer"]["text"] == "Sim, temos azul."


@pytest.mark.parametrize(
    ("text", "message"),
    [("   ", "the answer is empty"), ("x" * 2001, "2001 characters; Mercado Libre allows at most 2000")],
    ids=["empty", "too-long"],
)
def test_an_empty_or_too_long_answer_is_refused_before_any_call(url: str, text: str, message: str) -> None:
    async def scenario(shop: Shop) -> list[Any]:
        question_id = await ask_and_pull(url, shop)
        calls = shop.standin.total_requests()
        with pytest.raises(AfterSalesError) as refused:
            await answer(url, shop.channel, question_id, text)
        return [question_id, str(refused.value), shop.standin.total_requests() - calls]

    question_id, error, calls = run_ml(scenario)
    assert message in error and calls == 0
    assert question(url, question_id).state == "unanswered"


def test_a_marketplace_answering_500_loses_nothing_and_the_rerun_answers_once(url: str) -> None:
    async def scenario(shop: Shop) -> list[Any]:
        question_id = await ask_and_pull(url, shop)
        desk = shop.standin.after_sales
        desk.faults_next["answer"] = ["500"] * 8  # more than the channel's retries
        with pytest.raises(AfterSalesError) as failed:
            await answer(url, shop.channel, question_id, "Sim.")
        kept = question(url, question_id)
        desk.faults_next["answer"] = []
        done = await answer(url, shop.channel, question_id, "Sim.")
        return [str(failed.value), kept, done, desk.answers_posted]

    error, kept, done, posted = run_ml(scenario)
    assert "answered 500" in error and "the answer is kept: run the same command again" in error
    assert (kept.state, kept.answer) == ("answering", "Sim.") and kept.error
    assert done.sent and done.question.state == "answered" and done.question.error is None
    assert posted == 1


def test_an_answer_lost_on_its_way_back_is_read_back_not_sent_twice(url: str) -> None:
    async def scenario(shop: Shop) -> list[Any]:
        question_id = await ask_and_pull(url, shop)
        desk = shop.standin.after_sales
        desk.faults_next["answer"] = ["500-after"]  # taken, then the answer is lost; the retry is refused
        done = await answer(url, shop.channel, question_id, "Sim.")
        again = await answer(url, shop.channel, question_id, "Sim.")
        return [done, again, desk.answers_posted]

    done, again, posted = run_ml(scenario)
    assert done.sent and done.question.answered_by == "tradepost"
    assert not again.sent and posted == 1


def test_garbage_from_the_marketplace_is_a_clear_error_and_nothing_is_sent(url: str) -> None:
    async def scenario(shop: Shop) -> list[Any]:
        question_id = await ask_and_pull(url, shop)
        desk = shop.standin.after_sales
        desk.faults_next["question"] = ["garbage"]
        with pytest.raises(AfterSalesError) as failed:
            await answer(url, shop.channel, question_id, "Sim.")
        posted = desk.answers_posted
        done = await answer(url, shop.channel, question_id, "Sim.")
        return [str(failed.value), posted, done, desk.answers_posted]

    error, posted_then, done, posted = run_ml(scenario)
    assert "with no JSON object" in error and "the answer is kept" in error
    assert posted_then == 0
    assert done.sent and posted == 1


def test_a_question_answered_on_the_site_is_seen_and_another_answer_refused(url: str) -> None:
    async def scenario(shop: Shop) -> list[Any]:
        question_id = await ask_and_pull(url, shop)
        shop.standin.after_sales.answer_on_site(question_id, "Temos sim!")
        with StateStore(url) as state:
            summary = await pull_questions(AfterSalesStore(state), ML, shop.channel)
        with pytest.raises(AfterSalesError) as refused:
            await answer(url, shop.channel, question_id, "Sim.")
        return [summary, str(refused.value), question(url, question_id)]

    summary, error, stored = run_ml(scenario)
    assert summary.answered_elsewhere == 1
    assert "already answered (marketplace): 'Temos sim!'" in error
    assert (stored.state, stored.answered_by) == ("answered", "marketplace")


def test_a_carrefour_customer_message_is_answered_once_in_its_thread(url: str) -> None:
    async def scenario(shop: MiraklStandin, channel: OrderChannel) -> list[Any]:
        order_id = shop.order_desk.create_order("1001", state="SHIPPING")
        thread_id = shop.after_sales.customer_writes(order_id, "Quando chega o pedido?")
        with StateStore(url) as state:
            await pull_questions(AfterSalesStore(state), "carrefour", channel)
            (listed,) = AfterSalesStore(state).questions(["carrefour"], unanswered=True)
        with pytest.raises(AfterSalesError) as short:
            await answer(url, channel, thread_id, "ok", "carrefour")  # Mirakl wants 3 characters
        first = await answer(url, channel, thread_id, "Chega amanhã.", "carrefour")
        again = await answer(url, channel, thread_id, "Chega amanhã.", "carrefour")
        return [order_id, listed, str(short.value), first, again, shop.after_sales]

    order_id, listed, short, first, again, desk = run_mirakl(scenario)
    assert listed.order_id == order_id and listed.text == "Quando chega o pedido?"
    assert "Carrefour needs at least 3" in short
    assert first.sent and not again.sent and desk.replies_posted == 1
    (thread,) = desk.threads.values()
    assert [m["from"]["type"] for m in thread["messages"]] == ["CUSTOMER_USER", "SHOP_USER"]


# -- the CLI over loopback -------------------------------------------------------------------------


@pytest.fixture
def project(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path]:
    box = loopback.sandbox(subset(20))
    config = write_project(box, tmp_path / "project")
    summary = run_apply(config, ML, box)
    assert summary.failed == 0, summary.failures
    return box, config


def test_questions_list_and_answer_from_the_cli(project: tuple[Sandbox, Path]) -> None:
    box, config = project
    ml: Any = box.standins[ML]
    question_id = ml.after_sales.ask(next(iter(ml.items)), "Serve no pé 42?")
    c = str(config)
    code, out, err = tradepost("questions", "list", "--unanswered", "--json", "-c", c)
    assert code == 0, err
    (listed,) = json.loads(out)["questions"]
    assert listed["question_id"] == question_id and listed["state"] == "unanswered"

    code, _, err = tradepost("questions", "answer", question_id, "", "-c", c)
    assert code == 1 and "error: the answer is empty" in err
    code, _, err = tradepost("questions", "answer", question_id, "x" * 2001, "-c", c)
    assert code == 1 and "allows at most 2000" in err
    code, _, err = tradepost("questions", "answer", "404", "Sim", "-c", c)
    assert code == 1 and "no question 404 in the state store" in err

    code, out, err = tradepost("questions", "answer", question_id, "Serve sim.", "-c", c)
    assert code == 0 and "answered." in out, err
    code, out, err = tradepost("questions", "answer", question_id, "Serve sim.", "-c", c)
    assert code == 0 and "already answered (tradepost): nothing sent" in out, err
    assert ml.after_sales.answers_posted == 1
    code, out, _ = tradepost("questions", "list", "--unanswered", "--stored", "-c", c)
    assert code == 0 and "No unanswered questions." in out


def test_an_answer_killed_after_the_marketplace_took_it_is_not_sent_again(
    project: tuple[Sandbox, Path],
) -> None:
    box, config = project
    ml: Any = box.standins[ML]
    question_id = ml.after_sales.ask(next(iter(ml.items)), "Tem garantia?")
    c = str(config)
    assert tradepost_process("questions", "list", "-c", c).returncode == 0
    killed = tradepost_process(
        "questions", "answer", question_id, "Tem, 90 dias.", "-c", c, failpoint="answer:after-marketplace"
    )
    assert killed.returncode == -signal.SIGKILL
    again = tradepost_process("questions", "answer", question_id, "Tem, 90 dias.", "-c", c)
    assert again.returncode == 0, again.stderr
    assert "already answered (tradepost)" in again.stdout
    assert ml.after_sales.answers_posted == 1
