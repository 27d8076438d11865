"""Named points where a test may kill the process (``TRADEPOST_FAILPOINT``), for crash-safety tests."""

from __future__ import annotations

from engine._failpoints import APPLY_POINTS, reach

__all__ = ["APPLY_POINTS", "reach"]
