"""A listing's content hash is the one existing state stores hold: changing its text would make
every listing look changed after an upgrade, and send the whole catalog again."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.model import Listing
from engine.model._listing import to_json_value


def _copied_hash(body: Any) -> str:
    """The hash as every earlier version computed it: a JSON-able copy first, then the text."""
    text = json.dumps(to_json_value(body), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _listing(fields: dict[str, Any]) -> Listing:
    return Listing(
        sku_id="1",
        product_id="p1",
        marketplace="mercadolibre",
        category="MLB1234",
        fields=fields,
        price=Decimal("10.00"),
        currency="BRL",
        quantity=1,
        group="p1",
        axes={"COLOR": "Azul"},
    )


def test_the_hash_of_a_listing_is_pinned() -> None:
    listing = _listing({"title": "Camiseta ç", "attributes": {"BRAND": "Acme"}, "price": Decimal("1.50")})
    assert listing.content_hash() == "59830957f11aa823652db98448b204d3"


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), values, max_size=6))
def test_the_hash_is_the_copied_bodys(fields: dict[str, Any]) -> None:
    listing = _listing(fields)
    body = {"category": listing.category, "fields": fields, "group": listing.group, "axes": listing.axes}
    assert listing.content_hash() == _copied_hash(body)
