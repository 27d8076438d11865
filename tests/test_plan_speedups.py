"""The plan's shortcuts give what the long way gives (issue 11: the plan's CPU time).

Each shortcut keeps a result for the next record or computes a figure once: the tests compare it
with the computation it saves, on repeated, interleaved and random inputs, and check that what the
engine must still do on a repeat (the SKU's budget) is done.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.model import Stock, WarehouseStock
from engine.rules._functions import (
    _ASCII_LOWER,
    _BLOCKS,
    _CELLS,
    _TAG_START,
    FUNCTIONS,
    _plain_text,
    _without_markup,
    available_units,
)
from engine.rules._limits import MAX_WORK, Budget, LimitExceeded

strip_html = FUNCTIONS["strip_html"].impl
uncached = _plain_text.__wrapped__

DESCRIPTIONS = [
    "<p>Leve &amp; macio</p><p>Algodão</p>",
    "<p>Fone de Ouvido, da SomMax.</p>",
    "3 < 5 <b>e</b> 7 &gt; 2<br/>fim",
    "",
    "<script>x</script><!-- y --><td>a</td><td>b</td>",
]


@pytest.mark.parametrize("order", [[0, 0, 0], [0, 1, 0, 1], [2, 3, 2, 4, 4, 0, 1, 2, 3, 4]])
def test_strip_html_repeats_give_the_scans_result(order: list[int]) -> None:
    for i in order:
        text = "".join(list(DESCRIPTIONS[i]))  # an equal text, not the same object
        assert strip_html(text) == uncached(text)


@given(
    st.lists(st.sampled_from(["<p>", "</p>", "<br>", "a", " ", "&amp;", "<", ">", "é", "\n"]), max_size=12)
)
def test_strip_html_random_text_twice(parts: list[str]) -> None:
    text = "".join(parts)
    assert strip_html(text) == uncached(text)
    assert strip_html(text) == uncached(text)


def test_a_repeated_text_is_charged_to_the_budget() -> None:
    text = "<p>" + "x" * (MAX_WORK // 3) + "</p>"
    strip_html(text)  # kept
    with Budget(), pytest.raises(LimitExceeded):
        for _ in range(4):
            strip_html(text)


def _stock(*units: tuple[str, int]) -> Stock:
    return Stock(warehouses=tuple(WarehouseStock(warehouse=w, quantity=q) for w, q in units))


def test_available_units_asked_again_and_otherwise() -> None:
    available_in = FUNCTIONS["available_in"].impl
    one, other = _stock(("main", 5), ("sp_cd", 3), ("rj", 7)), _stock(("main", 1), ("sp_cd", 1))
    asks = [
        (one, ("main", "sp_cd"), 8),
        (one, ("main", "sp_cd"), 8),  # the select's sum, asked again by the stock step
        (one, ["main", "sp_cd"], 8),
        (one, ("main",), 5),
        (one, None, 15),
        (other, ("main", "sp_cd"), 2),
        (_stock(("main", 5), ("sp_cd", 3)), ("main", "sp_cd"), 8),  # an equal stock, another object
        (one, ("rj",), 7),
    ]
    for stock, warehouses, units in asks:
        assert available_units(stock, warehouses) == units == stock.available_in(warehouses)
        if warehouses is not None:
            assert available_in(stock, warehouses) == units


def _markup_scan_before(text: str) -> str:
    """The scan as it was before it lowered only tag names (the whole text lowered first), written
    another way: the old loop's steps as one expression per kind of markup."""
    low, out, at = text.translate(_ASCII_LOWER), [], 0
    while found := _TAG_START.search(text, at):
        start, piece = found.start(), ""
        out.append(text[at:start])
        end = text.find(">", start)
        if low[start : start + 4] == "<!--":
            close = text.find("-->", start + 4)
            at, piece = (len(text) if close < 0 else close + 3), " "
        elif end < 0:
            at = start
            break
        else:
            name = next(iter(low[start + 1 : end].split(None, 1)), "").strip("/")
            at = end + 1
            if name in ("script", "style") and low[start + 1] != "/":
                after = text.find(">", low.find("</" + name, at)) if "</" + name in low[at:] else -1
                at = len(text) if after < 0 else after + 1
            piece = "\n" if name in _BLOCKS else " " if name in _CELLS else ""
        out.append(piece)
    return "".join(out) + text[at:]


MARKUP = ["<", ">", "/", "!", "?", "-", "--", "<!--", "-->", " ", "\u00a0", "\n", "x", "é", "\u212a"]
NAMES = ["p", "P", "br", "BR", "td", "Td", "img", "script", "SCRIPT", "Style", "stYle", "b", "blockquote"]
NAMES += ["bloc\u212aquote", "h1", "H6", "div", "li", "TABLE"]


@given(st.lists(st.sampled_from(MARKUP + NAMES), max_size=30))
def test_markup_scan_gives_what_it_gave(parts: list[str]) -> None:
    text = "".join(parts)
    assert _without_markup(text) == _markup_scan_before(text)


@given(st.text(max_size=60))
def test_markup_scan_of_any_text(text: str) -> None:
    assert _without_markup(text) == _markup_scan_before(text)
