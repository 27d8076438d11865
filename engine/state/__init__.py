"""The state store: what Tradepost believes each marketplace holds, in SQLite under per-marketplace leases.

A cache of the marketplaces, never the truth: :func:`engine.project.rebuild_state` reads it back from them.
"""

from __future__ import annotations

from engine.state._store import StateStore

__all__ = ["StateStore"]
