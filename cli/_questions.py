"""`tradepost questions`: what buyers ask the seller on the marketplaces, and the one answer each gets.

``list`` reads the marketplaces' questions (Mercado Libre's on listings, Mirakl's message threads
on orders), keeps each once in the state store, and lists them; ``answer ID TEXT`` posts the
answer once, even when the command is run again or killed mid-way: the answer is recorded before
it is sent and the question read back before any repeat. The asker's name or id is never stored
nor shown. Exit codes: 0 done, 1 an error (the message says what to do; nothing is lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from cli._orders import _after_sales, _run, _taking_orders, json_option, marketplace_option, print_after_sales
from cli._plan import _project, config_option
from cli._render import console
from engine.jsonio import dumps
from engine.orders import AfterSalesError, AfterSalesStore, QuestionsSummary, StoredQuestion, answer_question
from engine.project import open_state, order_desks, order_marketplaces
from engine.secrets import redact
from engine.state import StateStore


@click.group()
def questions() -> None:
    """Customer questions from the marketplaces: list them, answer each once.

    \b
      list      read new questions (unless --stored) and list them; --unanswered for the queue
      answer    post the answer to one question: ID TEXT
    `tradepost orders pull` reads questions too, so a scheduler keeps the list fresh.
    """


@questions.command(name="list")
@config_option
@marketplace_option
@click.option("--unanswered", is_flag=True, help="Only questions still waiting for the seller.")
@click.option(
    "--stored", is_flag=True, help="Only list what the state store holds; read nothing from marketplaces."
)
@json_option
def list_questions(
    config_path: Path | None, marketplaces: Sequence[str], unanswered: bool, stored: bool, as_json: bool
) -> None:
    """Read the marketplaces' questions, then list them, oldest first."""
    project = _project(config_path)
    read: list[QuestionsSummary] = []
    if not stored:
        names = _taking_orders(project, order_marketplaces(project, marketplaces), "read questions from")
        for found in _run(project, names, "list", _read_questions, lock="questions"):
            read.extend(found)
    with open_state(project) as state:
        rows = AfterSalesStore(state).questions(list(marketplaces) or None, unanswered=unanswered)
    if as_json:
        click.echo(
            dumps(
                {"pull": [s.to_dict() for s in read], "questions": [row.to_dict() for row in rows]}, indent=2
            )
        )
    else:
        for summary in read:
            print_after_sales(console(stderr=True), summary)
        _print_questions(rows, unanswered)
    if any(summary.error for summary in read):
        raise SystemExit(1)


@questions.command()
@click.argument("question_id")
@click.argument("text")
@config_option
@click.option("-m", "--marketplace", help="The question's marketplace, when two share the id.")
@json_option
def answer(
    question_id: str, text: str, config_path: Path | None, marketplace: str | None, as_json: bool
) -> None:
    """Post TEXT as the answer to question QUESTION_ID, once (a repeat with the same text sends nothing)."""
    project = _project(config_path)
    with open_state(project) as state:
        found = AfterSalesStore(state).find_question(question_id, marketplace)
        if not found:
            where = f"{marketplace} " if marketplace else ""
            raise AfterSalesError(
                f"no {where}question {question_id} in the state store; run `tradepost questions list`"
            )
        if len(found) > 1:
            names = ", ".join(sorted(q.marketplace for q in found))
            raise AfterSalesError(f"question {question_id} exists on several marketplaces ({names}); pass -m")
        outcome = asyncio.run(_answer(project, state, found[0].marketplace, question_id, text))
    if as_json:
        click.echo(dumps(outcome.to_dict(), indent=2))
        return
    question = outcome.question
    if outcome.sent:
        console().print(f"{question.marketplace} question {question.question_id} answered.")
    else:
        console().print(
            f"{question.marketplace} question {question.question_id} was already answered "
            f"({question.answered_by}): nothing sent."
        )


async def _answer(project: Any, state: StateStore, marketplace: str, question_id: str, text: str) -> Any:
    lock = f"questions:{marketplace}"
    async with order_desks(project, state, [marketplace]) as desks:
        desk = desks[marketplace]
        state.acquire_lock(lock, "tradepost questions answer")
        try:
            return await answer_question(AfterSalesStore(state), marketplace, desk.channel, question_id, text)
        finally:
            state.release_lock(lock)


async def _read_questions(desk: Any, state: StateStore) -> list[Any]:
    return await _after_sales(desk, state, returns=False, questions=True)


def _print_questions(rows: list[StoredQuestion], unanswered: bool) -> None:
    out = console()
    if not out.is_terminal:
        out.width = 200
    if not rows:
        out.print("No unanswered questions." if unanswered else "No questions.")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("marketplace", "question", "on", "asked", "state", "question / answer"):
        table.add_column(column, overflow="fold")
    for row in rows:
        on = (
            f"order {row.order_id}"
            if row.order_id
            else f"SKU {row.sku_id}"
            if row.sku_id
            else row.item_id or ""
        )
        said = escape(row.text) + (f"\n→ {escape(row.answer)}" if row.answer else "")
        if row.error:
            said += f"\n[red]last error[/red]: {redact(row.error)}"
        asked = row.to_dict()["asked_at"] or ""
        table.add_row(row.marketplace, row.question_id, on, asked, row.state, said)
    out.print(table)
