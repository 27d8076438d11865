"""What a marketplace holds, as read back for ``tradepost state rebuild``: the connector contract.

A connector's :meth:`~engine.connectors.Connector.read_back` yields one :class:`RemoteListing`
per SKU; ``engine.project._rebuild`` compares each with the listing the rules give it now, through the
connector's ``remote_differences``, which compares with :func:`differing`: what the connector
would send against what was read, ignoring whatever the marketplace adds on its own. A read that
cannot be completed is a :class:`ReadBackError`, and the rebuild then writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine._diagnostics import TradepostError


@dataclass(frozen=True)
class RemoteListing:
    """One SKU as the marketplace holds it, read back by :meth:`Connector.read_back`.

    ``content`` is the marketplace's content in the connector's own comparable form (the same
    form :meth:`Connector.remote_differences` builds from a listing), so that a rebuilt state
    row can say whether the content is the one the rules would send. ``quantity`` is None where
    the marketplace shows only in or out of stock (Google).
    """

    sku_id: str
    remote_id: str | None
    """As the connector records it after an apply (None where the marketplace keys by SKU)."""
    price: Decimal | None
    sale_price: Decimal | None = None
    quantity: int | None = None
    content: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None
    """The marketplace's family key (a Mercado Libre item holding variations), or None."""
    live: bool = True
    """False for a listing withdrawn the way the connector withdraws one (a paused item)."""
    idle: bool = False
    """Live, but as a withdrawal leaves it (a Mercado Libre variation with no stock): withdrawn
    when the rules do not list the SKU, a listing like any other when they do."""


class ReadBackError(TradepostError):
    """The marketplace refused a read, or could not be reached, while listings were read back."""


def differing(sent: Mapping[str, Any], read: Mapping[str, Any]) -> list[str]:
    """Keys of ``sent`` whose value ``read`` does not hold. Mappings compare key by key the same
    way, so what the marketplace adds (its own attributes, ids, defaults) is ignored; lists and
    scalars compare whole."""
    found = []
    for key, value in sent.items():
        other = read.get(key)
        if isinstance(value, Mapping) and isinstance(other, Mapping):
            if differing(value, other):
                found.append(key)
        elif comparable(value) != comparable(other):
            found.append(key)
    return found


def parts_differing(
    sent: Mapping[str, Any], read: Mapping[str, Any], under: str, parts: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    """Which parts of a listing differ, for a marketplace whose body holds price and stock among
    its attributes: ``parts`` names, per kind ("price", "stock"), the keys of ``sent[under]`` that
    carry it; the other keys of ``sent`` (those of ``sent[under]`` included) are "content".
    ``sent`` and ``read`` are in :attr:`RemoteListing.content`'s form."""
    attributes = dict(sent[under])
    held = read.get(under) or {}
    taken = {kind: {key: attributes.pop(key, None) for key in keys} for kind, keys in parts.items()}
    kinds = ["content"] if differing({**sent, under: attributes}, read) else []
    for kind, values in taken.items():
        if comparable(values) != comparable({key: held.get(key) for key in values}):
            kinds.append(kind)
    return tuple(kinds)


def comparable(value: Any) -> Any:
    """JSON-like data with every number as a normalised Decimal string and mappings sorted, so
    that what was sent and what the marketplace answers compare equal when they mean the same."""
    return json.loads(json.dumps(_normalised(value), sort_keys=True))


def _normalised(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, Mapping):
        return {str(k): _normalised(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalised(v) for v in value]
    return str(value)
