"""The one registry of plug-ins: connectors, order channels, sources and stand-ins.

Everything is found through Python entry points, the built-ins included (they are declared in
Tradepost's own ``pyproject.toml`` like any plug-in), so the engine never names a marketplace.
A third-party package registers in its pyproject::

    [project.entry-points."tradepost.connectors"]
    shopee = "tradepost_shopee:ShopeeConnector"

    [project.entry-points."tradepost.order_channels"]
    shopee = "tradepost_shopee:ShopeeOrders"

A name registered twice keeps Tradepost's own entry (a plug-in may add, not replace).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from engine.connectors._contract import Connector
from engine.connectors._orderchannel import OrderChannel
from engine.connectors._source import Source

CONNECTORS = "tradepost.connectors"
ORDER_CHANNELS = "tradepost.order_channels"
SOURCES = "tradepost.sources"
STANDINS = "tradepost.standins"
ENTRY_POINT_GROUP = CONNECTORS


@cache
def _registered(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    entries = sorted(entry_points(group=group), key=lambda e: e.dist is None or e.dist.name != "tradepost")
    for entry in entries:
        found.setdefault(entry.name, entry)
    return found


def _load(group: str, name: str, base: type[Any]) -> Any:
    entry = _registered(group)[name]
    loaded = entry.load()
    target = loaded if isinstance(loaded, type) else type(loaded)
    if not issubclass(target, base):
        raise TypeError(f"{entry.value} is not a {base.__name__}")
    return loaded


def available_connectors() -> dict[str, str]:
    """Connector name -> import target, for every connector installed."""
    return {name: entry.value for name, entry in _registered(CONNECTORS).items()}


def connector_class(name: str) -> type[Connector]:
    """The connector class registered under ``name``; KeyError when there is none."""
    cls: type[Connector] = _load(CONNECTORS, name, Connector)
    return cls


def order_channel_class(name: str) -> type[OrderChannel] | None:
    """The order channel of a marketplace, or None where it takes no orders (Google Shopping)."""
    if name not in _registered(ORDER_CHANNELS):
        return None
    cls: type[OrderChannel] = _load(ORDER_CHANNELS, name, OrderChannel)
    return cls


def source(name: str) -> Source:
    """The catalog source plug-in of that type (``source.type``); KeyError when there is none."""
    found = _load(SOURCES, name, Source)
    return found() if isinstance(found, type) else found  # type: ignore[no-any-return]


def standin_class(name: str) -> type[Any]:
    """The stand-in server class of a marketplace or source; KeyError when there is none."""
    cls: type[Any] = _registered(STANDINS)[name].load()
    return cls


def available_standins() -> dict[str, str]:
    """Stand-in name -> import target."""
    return {name: entry.value for name, entry in _registered(STANDINS).items()}
