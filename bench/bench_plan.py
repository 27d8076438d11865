"""A full plan of one marketplace over a synthetic catalog: SKUs per second and peak RSS.

    python bench/bench_plan.py --skus 100000 1000000        # generates catalogs under $TMPDIR
    python bench/bench_plan.py --skus 20000 --check-only    # only compare engine and baseline

For each size, a catalog is generated once with bench/synth.py (deterministic, seed 1), then
two measurements run, each in a fresh subprocess so peak RSS is its own:

* ``engine``: `tradepost plan` minus the printing: the compiled rules/mercadolibre.yaml run by
  the Planner over the streamed catalog, diffed against an empty SQLite state store.
* ``handwritten``: bench/handwritten.py, the same transformation written by hand in Python,
  over the same streamed catalog.

Before timing, both are run over the first 5,000 records and must give the same listings
(price, sale price, quantity, category, content) and the same invalid SKUs. Prints a table
and one JSON line per size (``"bench": "plan"``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _catalog(skus: int, folder: Path) -> Path:
    path = folder / f"catalog-{skus}.jsonl"
    if not path.exists():
        from synth import write_jsonl

        with path.open("w", encoding="utf-8") as out:
            write_jsonl(out, skus, seed=1, broken=True)
    return path


def _measure(kind: str, catalog: Path) -> dict[str, float]:
    """Run one side in this process (called in a subprocess) and return its figures."""
    from handwritten import listing_for

    import engine
    from engine.connectors import connector_class
    from engine.state._store import StateStore
    from engine.sync._plan import Planner
    from engine.sync._source import FileSource

    start = time.perf_counter()
    listed = invalid = 0
    if kind == "engine":
        compiled = engine.compile_rules(ROOT / "rules" / "mercadolibre.yaml")
        with tempfile.TemporaryDirectory() as tmp, StateStore(Path(tmp) / "state.sqlite") as state:
            planner = Planner(compiled, connector_class("mercadolibre")({}), state)
            for change in planner.changes(FileSource(catalog)):
                if change.op == "create":
                    listed += 1
                elif change.op == "invalid":
                    invalid += 1
    else:
        for item in FileSource(catalog):
            if isinstance(item, engine.MalformedRecord):
                invalid += 1
                continue
            result = listing_for(item)
            if isinstance(result, list):
                invalid += 1
            elif result is not None:
                listed += 1
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "listed": listed, "invalid": invalid}


def _peak_rss_mb() -> float:
    """This process's own peak RSS. ``ru_maxrss`` would not do: Linux carries the parent's
    high-water mark into a child across fork and exec, so every child would report the parent's."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _same_results(catalog: Path, records: int = 5000) -> None:
    """Engine and baseline must agree before their speeds are worth comparing."""
    from handwritten import listing_for

    import engine
    from engine.connectors import connector_class
    from engine.sync._plan import Planner
    from engine.sync._source import FileSource

    compiled = engine.compile_rules(ROOT / "rules" / "mercadolibre.yaml")
    planner = Planner(compiled, connector_class("mercadolibre")({}))
    items = [i for i in islice(FileSource(catalog), records) if not isinstance(i, engine.MalformedRecord)]
    engine_changes = {c.sku_id: c for c in planner.changes(items)}
    for item in items:
        mine = listing_for(item)
        theirs = engine_changes.get(item.sku.id)
        if mine is None:
            assert theirs is None, f"{item.sku.id}: baseline excludes, engine says {theirs and theirs.op}"
        elif isinstance(mine, list):
            assert theirs is not None and theirs.op == "invalid", f"{item.sku.id}: baseline invalid {mine}"
        else:
            assert theirs is not None and theirs.listing is not None, f"{item.sku.id}: engine {theirs}"
            a, b = mine, theirs.listing
            assert (a.price, a.sale_price, a.quantity, a.category, a.group) == (
                b.price,
                b.sale_price,
                b.quantity,
                b.category,
                b.group,
            ), f"{item.sku.id}: {a} != {b}"
            assert a.content_hash() == b.content_hash(), f"{item.sku.id}: {a.fields} != {b.fields}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "tradepost-bench")
    parser.add_argument("--check-only", action="store_true")
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "CATALOG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(_measure(args.measure[0], Path(args.measure[1]))))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    columns = ("seconds", "SKUs/s", "peak RSS MB", "listed", "invalid")
    print(f"{'SKUs':>10} {'side':>12} " + " ".join(f"{c:>12}" for c in columns))
    for skus in args.skus:
        catalog = _catalog(skus, args.dir)
        _same_results(catalog)
        if args.check_only:
            print(f"{skus:>10} engine and handwritten agree on the first 5,000 records")
            continue
        figures = {}
        for kind in ("handwritten", "engine"):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", kind, str(catalog)],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            figures[kind] = json.loads(out.stdout.strip().splitlines()[-1])
            f = figures[kind]
            print(
                f"{skus:>10} {kind:>12} {f['seconds']:>12.1f} {skus / f['seconds']:>12,.0f} "
                f"{f['peak_rss_mb']:>12.1f} {f['listed']:>12} {f['invalid']:>12}"
            )
        ratio = figures["engine"]["seconds"] / figures["handwritten"]["seconds"]
        print(f"{skus:>10} {'ratio':>12} {ratio:>11.2f}x (engine time / handwritten time; target <= 1.5)")
        print(
            json.dumps(
                {
                    "bench": "plan",
                    "skus": skus,
                    "cpus": os.cpu_count(),
                    "ratio": round(ratio, 3),
                    **{f"{k}_{m}": round(v, 2) for k, f in figures.items() for m, v in f.items()},
                }
            )
        )


if __name__ == "__main__":
    main()
