"""The state store: what Tradepost believes each marketplace holds, and how it is rebuilt from them."""

from __future__ import annotations

from engine._rebuild import rebuild_state
from engine._run import open_state
from engine._state import StateStore

__all__ = ["StateStore", "open_state", "rebuild_state"]
