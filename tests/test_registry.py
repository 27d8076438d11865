"""One registry finds every plug-in through entry points; the built-ins are declared like any other."""

from __future__ import annotations

import tomllib

import pytest

from engine.connectors import (
    CONNECTORS,
    ORDER_CHANNELS,
    SOURCES,
    STANDINS,
    Connector,
    OrderChannel,
    Source,
    available_connectors,
    available_standins,
    connector_class,
    order_channel_class,
    source,
    standin_class,
)
from tests.conftest import ROOT

DECLARED = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["entry-points"]


def test_the_built_ins_are_entry_points_of_their_own_pyproject() -> None:
    assert set(DECLARED) == {CONNECTORS, ORDER_CHANNELS, SOURCES, STANDINS}
    assert available_connectors().items() >= DECLARED[CONNECTORS].items()
    assert available_standins().items() >= DECLARED[STANDINS].items()


@pytest.mark.parametrize(("name", "channel"), [("amazon", True), ("mercadolibre", True), ("google", False)])
def test_connectors_and_order_channels_are_found_by_name(name: str, channel: bool) -> None:
    assert issubclass(connector_class(name), Connector)
    assert connector_class(name).name == name
    found = order_channel_class(name)
    assert (found is not None and issubclass(found, OrderChannel)) is channel


def test_a_source_and_stand_ins_are_found_by_name() -> None:
    assert isinstance(source("vtex"), Source)
    for name in ("amazon", "mercadolibre", "google", "vtex"):
        assert standin_class(name).__name__.endswith("Standin")


def test_an_unknown_name_is_a_key_error_or_no_channel() -> None:
    with pytest.raises(KeyError):
        connector_class("shopee")
    with pytest.raises(KeyError):
        source("shopify")
    assert order_channel_class("shopee") is None
