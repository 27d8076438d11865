"""Run-time helpers that compiled expressions call.

The lowering pass emits plain Python operators when the checker proved both
operands are never null, and these helpers only where null can flow in: the
common case (``price.selling * 1.35``) runs at the speed of hand-written
code, and the uncommon one still propagates null instead of crashing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine._diagnostics import EvaluationError, Span


class Context:
    """The names an expression can read for one SKU (or one order item).

    A plain object with slots: attribute reads from generated code are the
    cheapest lookup Python offers.
    """

    __slots__ = ("category", "item", "listing", "order", "price", "product", "sku", "stock", "value")

    def __init__(
        self,
        product: Any = None,
        sku: Any = None,
        price: Any = None,
        stock: Any = None,
        listing: Any = None,
        order: Any = None,
        item: Any = None,
        value: Any = None,
        category: Any = None,
    ) -> None:
        self.product = product
        self.sku = sku
        self.price = price
        self.stock = stock
        self.listing = listing
        self.order = order
        self.item = item
        self.value = value
        self.category = category


def add(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a + b


def sub(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a - b


def mul(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a * b


def div(a: Any, b: Any, at: Span | None) -> Any:
    if a is None or b is None:
        return None
    if not (_is_number(a) and _is_number(b)):
        raise EvaluationError("'/' needs numbers", at)
    if not b:
        raise EvaluationError("division by zero", at, code="TP903")
    return Decimal(a) / b


def _is_number(value: Any) -> bool:
    return isinstance(value, Decimal | int) and not isinstance(value, bool)


def neg(a: Any) -> Any:
    return None if a is None else -a


def lt(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a < b


def le(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a <= b


def gt(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a > b


def ge(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a >= b


def contains(container: Any, member: Any) -> Any:
    if container is None:
        return None
    if isinstance(container, str) and not isinstance(member, str):
        return None if member is None else str(member) in container
    return member in container


def index(container: Any, key: Any) -> Any:
    """``x[k]``: a missing key or index gives null, like a missing specification."""
    if container is None or key is None:
        return None
    if isinstance(container, dict):
        return container.get(key if isinstance(key, str) else str(key))
    try:
        return container[int(key)]
    except (IndexError, ValueError, TypeError):
        return None


def field(target: Any, name: str) -> Any:
    """Field access on a value that may be null, or on a mapping."""
    if target is None or name.startswith("_"):
        return None  # the checker refuses '_' names; this is the second wall
    if isinstance(target, dict):
        return target.get(name)
    return getattr(target, name, None)


def concat(*parts: Any) -> str:
    """Template output: values as jinja2 prints them, null as nothing."""
    return "".join("" if part is None else part if isinstance(part, str) else str(part) for part in parts)


RUNTIME: dict[str, Any] = {
    "_concat": concat,
    "_add": add,
    "_sub": sub,
    "_mul": mul,
    "_div": div,
    "_neg": neg,
    "_lt": lt,
    "_le": le,
    "_gt": gt,
    "_ge": ge,
    "_in": contains,
    "_index": index,
    "_field": field,
    "_Decimal": Decimal,
}
