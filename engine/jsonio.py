"""JSON with exact decimal numbers.

Marketplaces take prices as JSON numbers. Python's json module can only
write floats, which would turn 134.90 into 134.9 at best and 0.1 + 0.2 into
0.30000000000000004 at worst; here a ``Decimal`` is written as the number
it is, digit for digit, and read back as a ``Decimal``.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

__all__ = ["dumps", "loads"]

_MARK = "\u0000dec:"
_MARKED = re.compile('"\\\\u0000dec:(-?[0-9.]+(?:E[+-]?[0-9]+)?)"')


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send {value} as a JSON number")
        return _MARK + format(value, "f")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """``json.dumps`` that writes ``Decimal`` values as exact JSON numbers."""
    text = json.dumps(value, default=_default, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    return _MARKED.sub(r"\1", text)


def loads(text: str | bytes) -> Any:
    """``json.loads`` that reads every non-integer number as a ``Decimal``."""
    return json.loads(text, parse_float=Decimal)
