"""Call routing as a declaration: which request sends each kind of change.

A connector declares a table, kind of change -> :class:`Route` (method, path template, query
template), and :meth:`~engine.connectors.Connector.calls_for` builds every call from it and the
bodies the plan saved; a marketplace that truly differs (Mercado Libre's variations) adds a hook.
Templates are filled with ``str.format_map`` from the connector's
:meth:`~engine.connectors.Connector.path_values` plus ``sku_id`` and ``remote_id`` (percent-encoded
whole, so a SKU id holding ``/`` stays one path segment).

Price and stock sent in one call follow one rule for every marketplace, :func:`merged`: objects
are merged key by key, lists are concatenated, a later scalar wins. That gives Mercado Libre's
``{price, available_quantity}``, Amazon's JSON Patch with both operations and Google's
``productAttributes`` with price and availability, and a query value that differs between the two
routes (Google's ``updateMask``) lists both, comma-separated, as a field mask does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.connectors._change import RouteKind


@dataclass(frozen=True)
class Call:
    """One HTTP request a change needs, relative to the connector's base URL."""

    method: str
    path: str
    body: Any = None
    params: Mapping[str, str] | None = None
    kind: str = ""
    """What the call does ("create", "price", "stock", "price+stock", "content", "delete"), for logs
    and masks."""


@dataclass(frozen=True)
class Route:
    """The request that sends one kind of change: ``Route("PUT", "/items/{item}")``."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    """Query parameters; values are templates like the path."""

    def call(self, kinds: Sequence[RouteKind], body: Any, values: Mapping[str, str]) -> Call:
        params = {name: value.format_map(values) for name, value in self.params.items()}
        return Call(self.method, self.path.format_map(values), body, params or None, "+".join(kinds))


def route_for(routes: Mapping[RouteKind, Route], kinds: Sequence[RouteKind]) -> Route:
    """The route of one call sending ``kinds`` together: theirs, which must share method and path."""
    chosen = [routes[kind] for kind in kinds]
    first = chosen[0]
    if any((route.method, route.path) != (first.method, first.path) for route in chosen):
        raise ValueError(f"{'+'.join(kinds)} cannot travel in one call: their routes differ")
    params: dict[str, str] = {}
    for route in chosen:
        for name, value in route.params.items():
            known = params.get(name)
            params[name] = value if known is None or known == value else f"{known},{value}"
    return Route(first.method, first.path, params)


def merged(bodies: Sequence[Any]) -> Any:
    """Several bodies as one: objects merged key by key, lists concatenated, a later scalar wins."""
    result = bodies[0]
    for body in bodies[1:]:
        result = _merge(result, body)
    return result


def _merge(left: Any, right: Any) -> Any:
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        out = dict(left)
        for key, value in right.items():
            out[key] = _merge(out[key], value) if key in out else value
        return out
    if isinstance(left, list) and isinstance(right, list):
        return [*left, *right]
    return right
