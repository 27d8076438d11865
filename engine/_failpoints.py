"""Named crash points, so tests can kill the process at an exact step and prove nothing is lost.

``TRADEPOST_FAILPOINT=place:after-vtex`` makes the process SIGKILL itself the
first time it reaches :func:`reach` with that name (``name:#N``: the N-th time).
A real ``kill -9`` from a scheduler or the OOM killer can land anywhere; these
points are where it would hurt most (between a remote side effect and the
state store recording it), so the exactly-once tests aim there. Unset, a
failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["reach"]

_ENV = "TRADEPOST_FAILPOINT"
_hits: dict[str, int] = {}


def reach(name: str) -> None:
    """Die here, as ``kill -9`` would, when the environment names this point."""
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    point, _, count = wanted.partition(":#")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= (int(count) if count.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
