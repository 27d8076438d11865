"""Google's own status of our products, for ``tradepost status --refresh``.

The Merchant API gives each processed product a ``productStatus`` (``products_common.proto``):
``destinationStatuses`` (per reporting context, the countries where the offer is approved,
pending or disapproved) and ``itemLevelIssues`` (``code``, ``severity``: ``NOT_IMPACTED``,
``DEMOTED`` or ``DISAPPROVED``, a ``description`` and the ``attribute`` at fault). It comes with
``products.list``, so a refresh reads the account's products 1,000 a page, as a rebuild does, and
keeps those asked about. A product is:

* ``rejected`` when an issue disapproves it (the first such issue's code and description), or
  when every country disapproves it;
* ``active`` when some country approves it (a DEMOTED issue still serves it);
* ``under_review`` when countries are pending, or Google shows no status yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.connectors import ListingState


def judged(product: Mapping[str, Any]) -> tuple[ListingState, str, str]:
    """A product's (Tradepost status, Google's code, the reason)."""
    status = product.get("productStatus")
    status = status if isinstance(status, Mapping) else {}
    issues = [i for i in status.get("itemLevelIssues") or [] if isinstance(i, Mapping)]
    refusing = [i for i in issues if i.get("severity") == "DISAPPROVED"]
    if refusing:
        return "rejected", str(refusing[0].get("code") or ""), _described(refusing[0])
    destinations = [d for d in status.get("destinationStatuses") or [] if isinstance(d, Mapping)]
    countries = {
        kind: sorted({str(c) for d in destinations for c in d.get(f"{kind}Countries") or []})
        for kind in ("approved", "pending", "disapproved")
    }
    if countries["approved"]:
        return "active", "approved", ""
    if countries["pending"]:
        return "under_review", "pending", f"pending Google's review in {', '.join(countries['pending'])}"
    if countries["disapproved"]:
        return "rejected", "disapproved", f"disapproved in {', '.join(countries['disapproved'])}"
    return "under_review", "", "Google shows no status for the product yet"


def _described(issue: Mapping[str, Any]) -> str:
    text = str(issue.get("description") or issue.get("detail") or "")
    attribute = issue.get("attribute")
    return f"{text} ({attribute})" if attribute else text
