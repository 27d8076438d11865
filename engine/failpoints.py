"""Named crash points, so tests can kill the process at an exact step and prove nothing is lost.

``TRADEPOST_FAILPOINT=place:after-vtex`` makes the process SIGKILL itself the
first time it reaches :func:`reach` with that name (``name:#N``: the N-th time).
A real ``kill -9`` from a scheduler or the OOM killer can land anywhere; these
points are where it would hurt most (between a remote side effect and the
state store recording it), so the exactly-once tests aim there. Unset, a
failpoint costs one dictionary lookup.

``TRADEPOST_FAILPOINT_LOG=FILE`` appends the name of every failpoint reached to
``FILE``, one a line: the kill harness (``bench/bench_kills.py``) counts them in
a clean run to know how often each point is reached, and so where a kill can land.

:data:`APPLY_POINTS` names every failpoint of ``tradepost apply``; a test reads
the sources and fails when a point is added without being listed here, so the
kill harness covers every one.
"""

from __future__ import annotations

import os
import signal

__all__ = ["APPLY_POINTS", "reach"]

_ENV = "TRADEPOST_FAILPOINT"
_LOG = "TRADEPOST_FAILPOINT_LOG"
_hits: dict[str, int] = {}

APPLY_POINTS = (
    # engine/sync/_executor.py: around every remote call ...
    "apply:looked-up",  # the connector looked the SKU up on the marketplace (before a create)
    "apply:before-send",  # a request is about to leave
    "apply:sent",  # its answer arrived, nothing recorded yet
    "apply:bulk-done",  # a feed's outcomes are read, none recorded yet
    "apply:confirmed",  # accepted submissions were read back, none cleared yet
    # ... and after every state write
    "apply:recorded",  # one SKU's row written (applied or deleted)
    "apply:family-recorded",  # a family's rows written in one transaction
    "apply:error-recorded",  # a SKU's failure written
    "apply:pending-recorded",  # an accepted-but-unprocessed submission written
    "apply:pending-cleared",  # a confirmed submission cleared
    # marketplaces/mercadolibre/_http.py: the SELLER_SKU look-up before POST /items
    "mercadolibre:searched",
    "mercadolibre:item-read",
    # marketplaces/amazon: the JSON_LISTINGS_FEED round trip and the read-back of submissions
    "amazon:feed-document",
    "amazon:feed-uploaded",
    "amazon:feed-created",
    "amazon:feed-polled",
    "amazon:feed-report",
    "amazon:confirm-read",
    # marketplaces/magalu/_portfolio.py: a SKU created, its review read, its price or stock sent
    "magalu:sku-sent",
    "magalu:review-read",
    "magalu:offer-sent",
    # marketplaces/meta/_batches.py: an items_batch answered, a batch handle's status read
    "meta:batch-sent",
    "meta:batch-polled",
    # marketplaces/mirakl/_imports.py: every CSV import's upload, status polls and reports
    "mirakl:import-sent",
    "mirakl:import-polled",
    "mirakl:report-read",
    # marketplaces/sellercenter/_feeds.py: every feed sent, its FeedStatus polls, its errors read
    "sellercenter:feed-sent",
    "sellercenter:feed-polled",
    "sellercenter:feed-read",
    # marketplaces/netshoes: the products (families) sent for review, before their SKUs' status is read again
    "netshoes:products-sent",
)


def reach(name: str) -> None:
    """Die here, as ``kill -9`` would, when the environment names this point."""
    log = os.environ.get(_LOG)
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(name + "\n")
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    point, _, count = wanted.partition(":#")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= (int(count) if count.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
