"""JSON as Tradepost writes and reads it: decimals kept exact both ways."""

from __future__ import annotations

from engine._jsonio import dumps, loads

__all__ = ["dumps", "loads"]
