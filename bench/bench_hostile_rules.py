"""Hostile rule files through `tradepost check` and `tradepost plan`: wall time and peak RSS.

Each case is one rule file written to hurt the machine (catastrophic regex backtracking, a
billion-character padding, exponent towers, nested loops over the description, 200 nested
parentheses, a million-digit literal, jinja2's object globals). Each runs as a subprocess,
``tradepost check`` on the file and then ``tradepost plan`` of a small project over a
catalog whose first product is named ``"a" * 40 + "!"`` and has a 2,000-character
description. The child's own peak RSS comes from ``os.wait4``; every child runs under an
address-space cap (``--memory-mib``, default 2048) and a timeout (``--timeout``, default 60 s)
so that the benchmark itself cannot take the machine down: a case that hits either is shown
as ``TIMEOUT`` or ``MEMORY``.

    python bench/bench_hostile_rules.py [--timeout 60] [--memory-mib 2048] [--case NAME ...]

Prints a table (case, check exit and time, plan exit and time, worst peak RSS, the outcome
the user sees) and one JSON line (``"bench": "hostile_rules"``) for machines. Exits 1 when a
case times out, runs out of memory or prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BASE_RULES = """\
marketplace: mercadolibre
affiliate: MLB
trade_policy: "1"
currency: BRL
locale: pt-BR
categories:
  Apparel: MLB1276
price:
  value: price.selling
"""

CASES: dict[str, str] = {
    "regex (a+)+$": "select:\n  - 'matches(product.name, \"(a+)+$\")'\n",
    "template regex": "listing:\n  title: \"{{ matches(product.name, '(a+)+$') }}\"\n",
    "center(1e9)": "listing:\n  title: '{{ product.name | center(1000000000) }}'\n",
    "indent(1e9)": "listing:\n  title: '{{ product.description | indent(1000000000, true) }}'\n",
    "format %1e9d": "listing:\n  title: \"{{ '%1000000000d' | format(1) }}\"\n",
    "'%1e9d' % 1": "listing:\n  title: \"{{ '%1000000000d' % 1 }}\"\n",
    "'a' * 10**9": "listing:\n  title: \"{{ 'a' * 10**9 }}\"\n",
    "'a' * len * 10**9": "listing:\n  title: \"{{ 'a' * (product.name|length) * 10**9 }}\"\n",
    "7 nested replace": "listing:\n  title: '{{ "
    + "product.description"
    + ' | replace("a", product.description)' * 7
    + " }}'\n",
    "7 nested replace (expr)": "listing:\n  title: '="
    + "replace(" * 7
    + "product.description"
    + ', "a", product.description)' * 7
    + "'\n",
    "3 nested for": "listing:\n  title: '"
    + "".join(f"{{% for {v} in product.description %}}" for v in "xyz")
    + "."
    + "{% endfor %}" * 3
    + "'\n",
    "x ** 10000000": "listing:\n  title: '{{ (product.name|length) ** 10000000 }}'\n",
    "200 parens (template)": "listing:\n  title: '{{ " + "(" * 200 + "1" + ")" * 200 + " }}'\n",
    "200 parens (expr)": "listing:\n  title: '=" + "(" * 200 + "1" + ")" * 200 + "'\n",
    "1,000,001-digit literal": "price:\n  value: price.selling * 1" + "0" * 1_000_000 + "\n",
    "1,000,001-digit (template)": "listing:\n  title: '{{ 1" + "0" * 1_000_000 + " }}'\n",
    "set x = x ~ x, 40 times": "listing:\n  title: '{% set x = product.description %}"
    + "{% set x = x ~ x %}" * 40
    + "{{ x | length }}'\n",
    "macro recursion": "listing:\n  title: '{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}'\n",
    "lipsum": "listing:\n  title: '{{ lipsum }}'\n",
    "cycler": "listing:\n  title: '{{ cycler }}'\n",
    "joiner": "listing:\n  title: '{{ joiner }}'\n",
    "range(10**6)": "listing:\n  title: '{% for i in range(1000000) %}.{% endfor %}'\n",
}


HOSTILE_SKU = "1000"
"""The SKU whose product is named "a" * 40 + "!"."""


def catalog_lines() -> list[str]:
    records = []
    for index, name in enumerate(["a" * 40 + "!", "Tênis Runner", "Camiseta Básica"]):
        records.append(
            {
                "product": {
                    "id": str(100 + index),
                    "name": name,
                    "brand": "Acme",
                    "description": ("Leve e confortável para a academia. " * 60)[:2000],
                    "category_path": ["Apparel", "Shoes"],
                    "active": True,
                },
                "sku": {
                    "id": str(1000 + index),
                    "product_id": str(100 + index),
                    "name": name,
                    "ean": "4006381333931",
                    "active": True,
                    "images": [{"url": f"https://img.example/{index}.jpg", "is_main": True}],
                },
                "price": {"selling": "99.40"},
                "stock": {"warehouses": [{"warehouse": "main", "quantity": 5, "reserved": 0}]},
            }
        )
    return [json.dumps(record, ensure_ascii=False) for record in records]


@dataclass
class Run:
    exit: str
    seconds: float
    peak_mib: float
    output: str


def run(argv: list[str], cwd: Path, timeout: float, memory_mib: int) -> Run:
    """One child with an address-space cap; its own peak RSS from wait4 (ru_maxrss is KiB)."""
    limit = memory_mib * 1024 * 1024

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRADEPOST_CONFIG": str(cwd / "tradepost.yaml")}
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=cap)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            child.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        timer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    code = child.returncode
    memory = "MemoryError" in text or "std::bad_alloc" in text or (code == -9 and not killed.is_set())
    exit_text = "TIMEOUT" if killed.is_set() else "MEMORY" if memory else str(code)
    return Run(exit_text, seconds, usage.ru_maxrss / 1024, text)


def outcome(check: Run, plan: Run) -> str:
    """What the user sees: the first check diagnostic, or what the plan says of the hostile SKU."""
    for text in (check.output, plan.output):
        for line in text.splitlines():
            if "Traceback" in line or "internal error" in line:
                return "CRASH: " + line.strip()[:70]
    if check.exit != "0":
        errors = [line.strip() for line in check.output.splitlines() if "error[" in line]
        return (errors or [check.output.strip()[:90]])[0].replace("rules.yaml:", "")[:100]
    try:
        changes = json.loads(plan.output)["marketplaces"][0]["changes"]
    except (ValueError, KeyError, IndexError):
        return plan.output.strip()[-90:]
    hostile = next((c for c in changes if c.get("sku_id") == HOSTILE_SKU), None)
    if hostile is None:
        return f"SKU {HOSTILE_SKU}: excluded or unchanged"
    first = (hostile.get("reasons") or [{}])[0]
    where = first.get("location")  # "path/rules.yaml:13:52"
    at = " at " + where.rsplit("/", 1)[-1].replace("rules.yaml:", "") if isinstance(where, str) else ""
    return f"SKU {HOSTILE_SKU} {hostile['op']} {first.get('code', '')}{at} {first.get('message', '')}"[:100]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per command (default 60)")
    parser.add_argument("--memory-mib", type=int, default=2048, help="address-space cap per command")
    parser.add_argument("--case", action="append", help="only this case (repeatable)")
    args = parser.parse_args(argv)
    names = args.case or list(CASES)
    tradepost = [sys.executable, "-c", "from cli.main import main; main()"]
    rows = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="tp-hostile-") as folder:
        root = Path(folder)
        (root / "catalog.jsonl").write_text("\n".join(catalog_lines()) + "\n", encoding="utf-8")
        for name in names:
            case = root / f"case{names.index(name)}"
            case.mkdir()
            base = BASE_RULES
            if "price:" in CASES[name]:
                base = base.replace("price:\n  value: price.selling\n", "")
            if "listing:" not in CASES[name]:
                base += "listing:\n  title: '{{ product.name }}'\n"
            (case / "rules.yaml").write_text(base + CASES[name], encoding="utf-8")
            (case / "tradepost.yaml").write_text(
                "source: {type: file, path: ../catalog.jsonl}\nstate: state.sqlite\n"
                "marketplaces:\n  mercadolibre: {rules: rules.yaml}\n",
                encoding="utf-8",
            )
            check = run([*tradepost, "check", "rules.yaml"], case, args.timeout, args.memory_mib)
            plan = run([*tradepost, "plan", "--format", "json"], case, args.timeout, args.memory_mib)
            seen = outcome(check, plan)
            failed = failed or "TIMEOUT" in (check.exit, plan.exit) or "MEMORY" in (check.exit, plan.exit)
            failed = failed or seen.startswith("CRASH")
            rows.append((name, check, plan, seen))
    print(f"{'case':<28}{'check':>8}{'s':>8}{'plan':>9}{'s':>8}{'peak MiB':>10}  what the user sees")
    for name, check, plan, seen in rows:
        peak = max(check.peak_mib, plan.peak_mib)
        print(
            f"{name:<28}{check.exit:>8}{check.seconds:>8.2f}{plan.exit:>9}{plan.seconds:>8.2f}"
            f"{peak:>10.0f}  {seen}"
        )
    worst_plan = max(plan.seconds for _, _, plan, _ in rows)
    worst_check = max(check.seconds for _, check, _, _ in rows)
    worst_rss = max(max(c.peak_mib, p.peak_mib) for _, c, p, _ in rows)
    print(f"worst: check {worst_check:.2f} s, plan {worst_plan:.2f} s, peak RSS {worst_rss:.0f} MiB")
    print(
        json.dumps(
            {
                "bench": "hostile_rules",
                "cases": len(rows),
                "worst_check_s": round(worst_check, 2),
                "worst_plan_s": round(worst_plan, 2),
                "worst_peak_rss_mib": round(worst_rss),
                "failed": failed,
                "cpus": os.cpu_count(),
            }
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
