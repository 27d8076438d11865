"""Marketplace connectors: built-ins plus any registered through the ``tradepost.connectors`` entry points.

A third-party package registers its connector class in its own pyproject::

    [project.entry-points."tradepost.connectors"]
    shopee = "tradepost_shopee:ShopeeConnector"
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from importlib.metadata import entry_points

from marketplaces._base import Connector

_BUILT_IN = {
    "amazon": "marketplaces.amazon:AmazonConnector",
    "mercadolibre": "marketplaces.mercadolibre:MercadoLibreConnector",
    "google": "marketplaces.google:GoogleConnector",
}
ENTRY_POINT_GROUP = "tradepost.connectors"


def _load(target: str) -> type[Connector]:
    module_name, _, attribute = target.partition(":")
    cls = getattr(import_module(module_name), attribute)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise TypeError(f"{target} is not a Connector subclass")
    return cls


@cache
def available_connectors() -> dict[str, str]:
    """Connector name -> import target, built-ins first, then entry points (which may not override)."""
    found = dict(_BUILT_IN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def connector_class(name: str) -> type[Connector]:
    """The connector class registered under ``name``; KeyError when there is none."""
    return _load(available_connectors()[name])


__all__ = ["ENTRY_POINT_GROUP", "Connector", "available_connectors", "connector_class"]
