"""Rule files are bounded in time and memory: every hostile case has one exact, fast outcome.

Each case was seen to hang a plan or exhaust memory (even in `tradepost check`). Now a
constant that exceeds a bound is a check diagnostic at its file:line:col, and a value that
exceeds one while a SKU is evaluated makes that SKU invalid with a TP905/TP906 reason at the
rule's location; either way in well under a second, and the run goes on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

import engine
from engine.connectors import connector_class
from engine.rules._functions import FUNCTIONS
from engine.rules._limits import MAX_LITERAL_DIGITS, MAX_LOOP_STEPS, MAX_TEXT, SKU_BUDGET, LimitExceeded
from engine.rules._templates import TemplateCompiler
from engine.sync._evaluate import SkuEvaluator
from engine.sync._plan import Planner
from tests.conftest import MINIMAL_RULES, ROOT, context_for, sample_record

SECONDS = 2.0
"""Every case below finishes far below this on a loaded two-core machine; before, they hung."""

DESCRIPTION = ("Leve e confortável para a academia. " * 60)[:2000]
HOSTILE_NAME = "a" * 40 + "!"
WITH_CATEGORY = MINIMAL_RULES.replace(
    "price:\n  value: price.selling\n", "categories:\n  Apparel: MLB1276\nprice:\n  value: price.selling\n"
)
"""Rules reaching the listing step for the sample record; the appended section starts on line 13."""


@pytest.fixture
def timed() -> Iterator[None]:
    start = time.perf_counter()
    yield
    assert time.perf_counter() - start < SECONDS


def diagnostics(rule_file: Callable[..., Path], extra: str) -> list[tuple[str, int, int]]:
    base = (
        MINIMAL_RULES.replace("price:\n  value: price.selling\n", "") if extra.startswith("price") else None
    )
    path = rule_file(extra, base) if base is not None else rule_file(extra)
    result = engine.check_rules(path)
    assert result.compiled is None
    return [(d.code, d.span.line, d.span.column) for d in result.errors]


def outcome(rule_file: Callable[..., Path], extra: str) -> tuple[str, list[tuple[str, str, int, int]]]:
    compiled = engine.compile_rules(rule_file(extra, WITH_CATEGORY))
    evaluator = SkuEvaluator(compiled, connector_class(compiled.marketplace)(compiled.rules.options))
    record = sample_record(product={"name": HOSTILE_NAME, "description": DESCRIPTION})
    result = evaluator.evaluate(record)
    reasons = [(r.code, r.rule, r.span.line, r.span.column) for r in result.reasons if r.span is not None]
    return result.status, reasons


def nested(template: str, times: int) -> str:
    return template * times


# --- `tradepost check`: constants and shapes past a bound are diagnostics at their position


CHECKED = [
    ("center(1e9)", "listing:\n  title: '{{ product.name | center(1000000000) }}'\n", [("TP403", 11, 29)]),
    (
        "indent(1e9)",
        "listing:\n  title: '{{ product.description | indent(1000000000, true) }}'\n",
        [("TP403", 11, 36)],
    ),
    ("format", "listing:\n  title: \"{{ '%1000000000d' | format(1) }}\"\n", [("TP403", 11, 31)]),
    ("wordwrap", "listing:\n  title: '{{ product.name | wordwrap(1000000000) }}'\n", [("TP403", 11, 29)]),
    ("% on text", "listing:\n  title: \"{{ '%1000000000d' % 1 }}\"\n", [("TP406", 11, 29)]),
    ("'a' * 10**9", "listing:\n  title: \"{{ 'a' * 10**9 }}\"\n", [("TP313", 11, 18)]),
    ("41 ** 10**7", "listing:\n  title: '{{ 41 ** 10000000 }}'\n", [("TP313", 11, 17)]),
    (
        "200 nested parentheses",
        "listing:\n  title: '{{ " + "(" * 200 + "1" + ")" * 200 + " }}'\n",
        [("TP405", 11, 14 + 48)],  # the 49th bracket
    ),
    (
        "120 chained filters",
        "listing:\n  title: '{{ product.name" + " | upper" * 120 + " }}'\n",
        [("TP405", 11, 11)],
    ),
    (
        "1,000,001-digit literal",
        "price:\n  value: price.selling * 1" + "0" * 1_000_000 + "\n",
        [("TP203", 9, 26)],
    ),
    (
        "1,000,001-digit literal in a template",
        "listing:\n  title: '{{ 1" + "0" * 1_000_000 + " }}'\n",
        [("TP203", 11, 14)],
    ),
    (
        "folded number of 121 digits",
        "price:\n  value: price.selling * (" + " * ".join(["9" * 40] * 3) + ")\n",
        [("TP313", 9, 27)],
    ),
    (
        "12 nested replace of literals",
        "listing:\n  title: '=" + "replace(" * 12 + '"aaaa"' + ', "a", "aaaa")' * 12 + "'\n",
        [("TP313", 11, 28)],  # the innermost call whose result is over the limit: the third
    ),
    (
        "12 nested replace of literals in a template",
        "listing:\n  title: \"{{ 'aaaa'" + " | replace('a', 'aaaa')" * 12 + ' }}"\n',
        [("TP313", 11, 23)],
    ),
    ("lipsum", "listing:\n  title: '{{ lipsum }}'\n", [("TP402", 11, 14)]),
    ("cycler", "listing:\n  title: '{{ cycler(1, 2) }}'\n", [("TP403", 11, 14)]),
    ("joiner", "listing:\n  title: '{{ joiner }}'\n", [("TP402", 11, 14)]),
    ("namespace", "listing:\n  title: '{% set ns = namespace(a=1) %}{{ ns.a }}'\n", [("TP403", 11, 23)]),
    ("range", "listing:\n  title: '{% for i in range(1000000) %}.{% endfor %}'\n", [("TP403", 11, 23)]),
    (
        "recursive macro",
        "listing:\n  title: '{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}'\n",
        [("TP406", 11, 14), ("TP403", 11, 20)],
    ),
    (
        "a backreference RE2 cannot run",
        "select:\n  - 'matches(product.name, \"(a)\\\\1\")'\n",
        [("TP310", 11, 28)],
    ),
    (
        "lookahead in a template",
        "listing:\n  title: \"{{ 'y' if matches(product.name, '(?=a)b') else 'n' }}\"\n",
        [("TP310", 11, 44)],  # the pattern
    ),
]


@pytest.mark.parametrize(("case", "extra", "expect"), CHECKED, ids=[c[0] for c in CHECKED])
def test_check_reports_what_exceeds_a_bound(
    rule_file: Callable[..., Path], case: str, extra: str, expect: list[tuple[str, int, int]]
) -> None:
    start = time.perf_counter()
    assert diagnostics(rule_file, extra) == expect
    # The million-digit cases spend most of it mapping positions in a 1 MB YAML file.
    assert time.perf_counter() - start < (8 * SECONDS if "1,000,001" in case else SECONDS)


def test_the_literal_limit_is_stated_in_the_message(rule_file: Callable[..., Path]) -> None:
    result = engine.check_rules(rule_file("listing:\n  title: =1" + "0" * MAX_LITERAL_DIGITS + "\n"))
    assert [d.message for d in result.errors] == [
        f"number literal of 41 digits; the limit is {MAX_LITERAL_DIGITS}"
    ]
    assert engine.check_rules(rule_file("listing:\n  title: =1" + "0" * 39 + "\n")).errors == []


# --- `tradepost plan`: a value past a bound makes the SKU invalid, at the rule's location

TITLE = ("listing.title", 13, 11)

EVALUATED = [
    (
        "'a' * len * 10**9",
        "listing:\n  title: \"{{ 'a' * (product.name|length) * 10**9 }}\"\n",
        "TP905",
        TITLE,
    ),
    (
        "(x|length) ** 10000000",
        "listing:\n  title: '{{ (product.name|length) ** 10000000 }}'\n",
        "TP905",
        TITLE,
    ),
    ("(x|length) ** 300", "listing:\n  title: '{{ (product.name|length) ** 300 }}'\n", "TP905", TITLE),
    (
        "7 nested replace in a template",
        "listing:\n  title: '{{ product.description" + ' | replace("a", product.description)' * 7 + " }}'\n",
        "TP905",
        TITLE,
    ),
    (
        "7 nested replace in an expression",
        "listing:\n  title: '="
        + "replace(" * 7
        + "product.description"
        + ', "a", product.description)' * 7
        + "'\n",
        "TP905",
        ("listing.title", 13, 52),  # the call that would pass the limit
    ),
    (
        "3 nested for over the description",
        "listing:\n  title: '"
        + "".join(f"{{% for {v} in product.description %}}" for v in "xyz")
        + "."
        + "{% endfor %}" * 3
        + "'\n",
        "TP906",
        TITLE,
    ),
    (
        "set x = x ~ x, 40 times",
        "listing:\n  title: '{% set x = product.description %}" + "{% set x = x ~ x %}" * 40 + "{{ x }}'\n",
        "TP905",
        TITLE,
    ),
    (
        "set x = x + x, 40 times",
        "listing:\n  title: '{% set x = product.description %}" + "{% set x = x + x %}" * 40 + "{{ x }}'\n",
        "TP905",
        TITLE,
    ),
    (
        "a loop that builds without printing",
        "listing:\n  title: '{% for c in product.description %}{% set y = product.description * 400 %}"
        "{% endfor %}.'\n",
        "TP906",
        TITLE,
    ),
    (
        "a list repeated past the limit",
        'listing:\n  title: "{{ ([product.name] * 100000) | length }}"\n',
        "TP905",
        TITLE,
    ),
    (
        "join past the limit",
        "listing:\n  title: \"{{ ([product.description] * 9000) | join(',') }}\"\n",
        "TP905",
        TITLE,
    ),
]


@pytest.mark.parametrize(("case", "extra", "code", "where"), EVALUATED, ids=[c[0] for c in EVALUATED])
def test_a_value_past_a_bound_makes_the_sku_invalid(
    rule_file: Callable[..., Path], timed: None, case: str, extra: str, code: str, where: tuple[str, int, int]
) -> None:
    status, reasons = outcome(rule_file, extra)
    assert (status, reasons) == ("invalid", [(code, *where)])


def test_the_run_goes_on_after_a_sku_past_a_bound(rule_file: Callable[..., Path], timed: None) -> None:
    """Each SKU has a budget of its own: the one that spent it does not starve the next."""
    loops = "{% for x in product.description %}{% for y in product.description %}{% endfor %}{% endfor %}"
    compiled = engine.compile_rules(rule_file(f"listing:\n  title: 'Tênis{loops}'\n", WITH_CATEGORY))
    evaluator = SkuEvaluator(compiled, connector_class(compiled.marketplace)(compiled.rules.options))
    long = sample_record(product={"description": DESCRIPTION})  # 2,000 * 2,000 iterations
    short = sample_record(product={"description": "x" * 99})  # 99 * 99 = 9,801: within the budget
    outcomes = [evaluator.evaluate(record) for record in (long, short, long, short)]
    assert [(o.status, [r.code for r in o.reasons]) for o in outcomes] == [
        ("invalid", ["TP906"]),
        ("listed", []),
        ("invalid", ["TP906"]),
        ("listed", []),
    ]


def test_a_plan_fills_each_skus_budget_anew(rule_file: Callable[..., Path], timed: None) -> None:
    """The planner arms one budget around a batch and fills it before each SKU: two SKUs that each
    spend two thirds of the allowance are both listed, and one past it does not starve the next."""
    loops = "{% for x in product.description %}{% for y in product.description %}{% endfor %}{% endfor %}"
    compiled = engine.compile_rules(rule_file(f"listing:\n  title: 'Tênis{loops}'\n", WITH_CATEGORY))
    planner = Planner(compiled, connector_class(compiled.marketplace)(compiled.rules.options))
    two_thirds = "x" * int((MAX_LOOP_STEPS * 2 / 3) ** 0.5)  # 81 * 81 = 6,561 of 10,000 iterations
    descriptions = [two_thirds, two_thirds, DESCRIPTION, two_thirds, two_thirds]
    records = [
        sample_record(product={"description": text}, sku={**sample_record().sku.model_dump(), "id": str(n)})
        for n, text in enumerate(descriptions)
    ]
    changes = list(planner.changes(records))
    assert [(c.sku_id, c.op, [r.code for r in c.reasons]) for c in changes] == [
        ("0", "create", []),
        ("1", "create", []),
        ("2", "invalid", ["TP906"]),
        ("3", "create", []),
        ("4", "create", []),
    ]
    assert SKU_BUDGET.get() is None  # nothing left armed once the plan is read


def test_catastrophic_regex_runs_in_linear_time(rule_file: Callable[..., Path], timed: None) -> None:
    status, reasons = outcome(rule_file, "select:\n  - 'matches(product.name, \"(a+)+$\")'\n")
    assert (status, reasons) == ("excluded", [("TP920", "select", 13, 6)])
    matched = "listing:\n  title: \"{{ 'yes' if matches(product.name, '(a+)+!') else 'no' }}\"\n"
    assert outcome(rule_file, matched) == ("listed", [])


def test_a_template_outside_a_plan_has_a_budget_of_its_own(
    rule_file: Callable[..., Path], timed: None
) -> None:
    loops = "".join(f"{{% for {v} in product.description %}}" for v in "xyz") + "." + "{% endfor %}" * 3
    compiled = engine.compile_rules(rule_file(f"listing:\n  title: '{loops}'\n"))
    title = compiled.listing["title"]
    ctx = context_for(sample_record(product={"description": DESCRIPTION}))
    with pytest.raises(LimitExceeded) as raised:
        title.evaluate(ctx)
    assert (raised.value.code, raised.value.span and raised.value.span.line) == ("TP906", 11)
    assert f"{MAX_LOOP_STEPS:,} loop iterations" in raised.value.message


def test_templates_reach_only_the_documented_names() -> None:
    """No lipsum, cycler, joiner, namespace, range or dict: their reprs once went into titles."""
    env = TemplateCompiler({}).env
    assert set(env.globals) == set(FUNCTIONS)
    public = {name for name in env.filters if not name.startswith("_")}
    assert public == set(FUNCTIONS) | {
        "capitalize", "count", "d", "default", "first", "join", "last", "length", "select",
    }  # fmt: skip


def test_normal_templates_still_render(rule_file: Callable[..., Path]) -> None:
    text = (
        "listing:\n  title: \"{% for i in sku.images %}{{ i.url ~ ';' }}{% endfor %}"
        "{{ [product.brand, 'x'] | join(',') }} {{ 'ab' * 2 }} {{ 2 ** 10 }} {{ 7 % 4 }}\"\n"
    )
    compiled = engine.compile_rules(rule_file(text))
    title = compiled.listing["title"].evaluate(context_for(sample_record()))
    assert title == "https://img.example/10.jpg;Acme,x abab 1024 3"


@pytest.mark.parametrize(
    ("function", "args", "message"),
    [
        ("replace", ("ab" * 1000, "a", "a" * 1000), "replace() would be 1,001,000 characters"),
        ("text", (Decimal("1E+2000000"),), "a number of 2,000,001 digits is too long to write as text"),
    ],
)
def test_functions_refuse_before_building(function: str, args: tuple[object, ...], message: str) -> None:
    impl = FUNCTIONS[function].impl
    if function == "replace":
        assert len(impl(*args)) == 1_001_000  # just under the limit: built
        args = ("ab" * 2000, "a", "a" * 1000)
        message = "replace() would be 2,002,000 characters"
    with pytest.raises(LimitExceeded) as raised:
        impl(*args, at=None)
    assert raised.value.code == "TP905"
    assert raised.value.message.startswith(message)
    assert MAX_TEXT == 1_048_576


# --- the same files through the real command, as subprocesses: time and peak RSS bounded


def test_hostile_rule_files_through_check_and_plan() -> None:
    cases = ["'a' * 10**9"]  # before: 13 s and 2.9 GB in check alone
    argv = [
        sys.executable,
        str(ROOT / "bench" / "bench_hostile_rules.py"),
        "--timeout",
        "30",
        "--memory-mib",
        "2048",
    ]
    for case in cases:
        argv += ["--case", case]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["failed"] is False
    assert figures["worst_plan_s"] < 20 and figures["worst_check_s"] < 20
    assert figures["worst_peak_rss_mib"] < 300  # before: 2.9 GB, or killed
