"""The public surface of the engine is exactly this list; anything else is private (STYLE.md 1)."""

from __future__ import annotations

import engine


def test_engine_exports() -> None:
    assert engine.__all__ == sorted(engine.__all__)
    exported = {name for name in dir(engine) if not name.startswith("_")}
    assert set(engine.__all__) == exported - {"annotations"}
