"""Mercado Libre: a family's MPN and MODEL are each variation's own, sent and read back.

Given the bundled catalog planned with the bundled rule file (``MODEL: =sku.ref_id ??
product.ref_id``, ``mpn`` from the catalog), expect one item whose variations each carry their
SKU's SELLER_SKU, MPN and MODEL, and no MPN or MODEL on the item, where they would name one
member for all.
"""

from __future__ import annotations

from typing import Any

from tests.test_mercadolibre_connector import Planned, Session, planned, run

__all__ = ["planned"]  # the fixture, shared with the connector's own tests


def _own(holder: dict[str, Any]) -> dict[str, Any]:
    return {a["id"]: a.get("value_name") for a in holder.get("attributes") or []}


def test_each_variation_carries_its_own_mpn_and_model(planned: Planned) -> None:
    family = sorted(planned.family(), key=lambda c: c.sku_id)
    leader = family[0]
    (call,) = planned.connector().calls_for(planned.saved(leader), None)

    assert not {"MPN", "MODEL", "SELLER_SKU"} & set(_own(call.body))
    sent = {_own(v)["SELLER_SKU"]: _own(v) for v in call.body["variations"]}
    for member in family:
        assert member.listing is not None
        fields = member.listing.fields
        assert sent[member.sku_id]["MPN"] == fields["mpn"]
        assert sent[member.sku_id]["MODEL"] == fields["attributes"]["MODEL"]
    assert len({own["MPN"] for own in sent.values()}) == len(family)  # not the first member's for all

    async def scenario(s: Session) -> None:
        result, _ = await s.send(call)
        assert result.ok, result.error
        assert result.remote_ids is not None
        for member in family:
            assert member.listing is not None
            stored = _own(s.standin.variation(result.remote_ids[member.sku_id]))
            assert stored["MPN"] == member.listing.fields["mpn"]
            assert stored["MODEL"] == member.listing.fields["attributes"]["MODEL"]

    run(scenario, planned.connector())


def test_a_single_sku_keeps_mpn_and_model_on_the_item(planned: Planned) -> None:
    single = planned.single()
    (call,) = planned.connector().calls_for(planned.saved(single), None)

    assert single.listing is not None
    own = _own(call.body)
    assert own["MODEL"] == single.listing.fields["attributes"]["MODEL"]
    assert own.get("MPN") == single.listing.fields.get("mpn")
    assert "variations" not in call.body
