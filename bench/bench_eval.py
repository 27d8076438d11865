"""Evaluations per second of a compiled pricing rule, against the same rule hand-written in Python.

The compiler lowers each expression to Python source and compiles it once, folding
constants (``1 + 15% + 20%`` becomes ``1.35``), so a rule should run close to the speed of
code a developer would write by hand. This measures how close, on the price section of
``rules/mercadolibre.yaml``:

    value: price.selling * (1 + 15% + 20%)
    round: ending(0.90)
    min:   the file's minimum (e.g. price.cost * 1.10)

The compiled side calls ``compiled.price.value``, ``.round`` and ``.min`` (their ``fn``, as
the evaluator does) on a :class:`engine.Context`; the hand-written side computes the same
with ``decimal.Decimal``. Both run over the same 1,000 distinct prices, cycled to 200,000
evaluations; each rate is the best of 5 runs with ``time.perf_counter``, the two sides
taking turns. Before timing, the two are checked to give identical results, so the
comparison stays honest if the rule file changes.

    python bench/bench_eval.py [--evaluations 200000] [--repeat 5]

Prints a table and one JSON line (``"bench": "eval"``) for machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import engine

RULE_FILE = Path(__file__).resolve().parent.parent / "rules" / "mercadolibre.yaml"
DISTINCT_PRICES = 1000

MARKUP = Decimal("1.35")  # 1 + 15% commission + 20% margin
ENDING = Decimal("0.90")
MINIMUM_FACTOR = Decimal("1.10")
NO_COST_SHARE = Decimal("0.5")


def price_by_hand(price: engine.Price) -> tuple[Decimal, Decimal]:
    """The price section written by a developer: marked-up price ending in .90, and the minimum."""
    value = price.selling * MARKUP
    below = (value - ENDING).to_integral_value(rounding=ROUND_FLOOR) + ENDING
    rounded = (below if below == value else below + 1).quantize(ENDING)
    cost = price.cost if price.cost is not None else price.selling * NO_COST_SHARE
    return rounded, cost * MINIMUM_FACTOR


def sample_prices(count: int, seed: int = 7) -> list[engine.Price]:
    """Store-like prices: mostly ending in .90/.99, some with a cost, some without."""
    rng = random.Random(seed)
    prices = []
    for _ in range(count):
        selling = Decimal(rng.randint(9, 4999)) + rng.choice(
            [Decimal("0.90"), Decimal("0.99"), Decimal("0.00")]
        )
        cost = (
            (selling * Decimal(rng.randint(35, 70)) / 100).quantize(Decimal("0.01"))
            if rng.random() < 0.8
            else None
        )
        prices.append(engine.Price(selling=selling, cost=cost))
    return prices


def compiled_pricing(rules: engine.CompiledRules) -> Callable[[engine.Context], tuple[Any, Any]]:
    value, rounding, minimum = rules.price.value.fn, rules.price.round, rules.price.min
    if rounding is None or minimum is None:
        raise SystemExit(f"{RULE_FILE} must set price.round and price.min for this benchmark")
    round_fn, minimum_fn = rounding.fn, minimum.fn

    def price_compiled(ctx: engine.Context) -> tuple[Any, Any]:
        ctx.value = value(ctx)
        return round_fn(ctx), minimum_fn(ctx)

    return price_compiled


def check_same_results(
    compiled: Callable[[engine.Context], tuple[Any, Any]],
    contexts: Sequence[engine.Context],
    prices: Sequence[engine.Price],
) -> None:
    for ctx, price in zip(contexts, prices, strict=True):
        by_rules, by_hand = compiled(ctx), price_by_hand(price)
        if by_rules != by_hand or not all(type(x) is Decimal for x in by_rules):
            raise SystemExit(
                f"compiled rules give {by_rules} but price_by_hand gives {by_hand} for {price!r}; "
                f"update price_by_hand() to match the price section of {RULE_FILE}"
            )


def best_rates(runs: Sequence[Callable[[], int]], evaluations: int, repeat: int) -> list[float]:
    """Evaluations per second of each run, best of ``repeat``.

    The runs take turns, so that a noisy neighbour on a shared machine slows both alike.
    """
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for index, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - start)
    return [evaluations / seconds for seconds in best]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--evaluations", type=int, default=200_000, help="evaluations per run (default 200000)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best one counts (default 5)")
    args = parser.parse_args(argv)

    rules = engine.compile_rules(RULE_FILE)
    compiled = compiled_pricing(rules)
    prices = sample_prices(DISTINCT_PRICES)
    contexts = [engine.Context(price=price) for price in prices]
    check_same_results(compiled, contexts, prices)

    cycles = -(-args.evaluations // DISTINCT_PRICES)
    context_stream = (contexts * cycles)[: args.evaluations]
    price_stream = (prices * cycles)[: args.evaluations]

    def run_compiled() -> int:
        accepted = 0
        for ctx in context_stream:
            rounded, low = compiled(ctx)
            accepted += rounded >= low
        return accepted

    def run_by_hand() -> int:
        accepted = 0
        for price in price_stream:
            rounded, low = price_by_hand(price)
            accepted += rounded >= low
        return accepted

    assert run_compiled() == run_by_hand()
    compiled_rate, by_hand_rate = best_rates([run_compiled, run_by_hand], args.evaluations, args.repeat)
    ratio = by_hand_rate / compiled_rate
    cpus = os.cpu_count() or 0

    print(
        f"price.value + price.round + price.min of {RULE_FILE.name}: {args.evaluations:,} evaluations, "
        f"best of {args.repeat} ({cpus} CPUs, Python {platform.python_version()})"
    )
    print(f"  {'':<22}{'evaluations/s':>15}{'µs/evaluation':>16}")
    print(f"  {'compiled rules':<22}{compiled_rate:>15,.0f}{1e6 / compiled_rate:>16.2f}")
    print(f"  {'hand-written Decimal':<22}{by_hand_rate:>15,.0f}{1e6 / by_hand_rate:>16.2f}")
    print(
        f"  compiled rules run at {1 / ratio:.0%} of hand-written speed (hand-written is {ratio:.2f}x faster)"
    )
    print(
        json.dumps(
            {
                "bench": "eval",
                "evaluations": args.evaluations,
                "repeat": args.repeat,
                "compiled_per_s": round(compiled_rate),
                "hand_written_per_s": round(by_hand_rate),
                "ratio_hand_written_to_compiled": round(ratio, 3),
                "cpus": cpus,
                "python": platform.python_version(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
