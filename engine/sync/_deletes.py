"""The mass-delete guard: one apply withdraws at most a share of a marketplace's live listings.

An emptied or truncated catalog file, a trade policy answered empty, a ``select`` rule gone
wrong: to the planner each looks like SKUs withdrawn by the seller, and apply would faithfully
withdraw every listing. Like Terraform's ``prevent_destroy``, deletes beyond a share need the
operator's consent (``--allow-mass-delete``):

- a plan *needs consent* when it deletes more than ``max_delete_share`` (per marketplace in
  ``tradepost.yaml``, default 10%) of the marketplace's live listings, and more than
  :data:`FREE_DELETES` listings (so a small shop's routine withdrawals, 1 of 3, never need it);
- "live" is what the state store holds for the marketplace when the check runs (for a saved
  plan: at apply time), and never fewer than the deletes themselves;
- ``plan`` shows such deletes and says that apply will refuse them; ``apply`` without consent
  sends *no* change of that marketplace (a partial catalog would also make partial updates).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_UP, Decimal, InvalidOperation
from typing import Any

DEFAULT_MAX_DELETE_SHARE = Decimal("0.10")
FREE_DELETES = 5
"""Deletes up to this many never need consent, whatever the share."""

CONSENT_FLAG = "--allow-mass-delete"


def parse_share(value: object) -> Decimal:
    """``10%``, ``0.1`` (or a Decimal) as a share between 0 and 1; ValueError otherwise."""
    text = str(value).strip()
    try:
        share = Decimal(text[:-1].strip()) / 100 if text.endswith("%") else Decimal(text)
    except InvalidOperation:
        share = Decimal("NaN")
    if isinstance(value, bool) or not share.is_finite() or not 0 <= share <= 1:
        raise ValueError(f"must be a share between 0% and 100%, such as 10% or 0.1 (got {text[:40]!r})")
    return share


@dataclass(frozen=True)
class MassDelete:
    """A marketplace's deletes that exceed its share of live listings (they need consent)."""

    marketplace: str
    deletes: int
    live: int
    max_share: Decimal

    @property
    def share(self) -> Decimal:
        return Decimal(self.deletes) / Decimal(max(self.live, self.deletes, 1))

    def reason(self) -> str:
        """``420 of 420 live listings (100% > 10%)``"""
        return (
            f"{self.deletes} of {max(self.live, self.deletes)} live listings "
            f"({_percent(self.share)} > {_percent(self.max_share)})"
        )

    def refusal(self) -> str:
        """What apply says when it sends nothing for this marketplace."""
        return (
            f"refusing to delete {self.reason()}: the catalog may be incomplete; "
            f"pass {CONSENT_FLAG} if this is intended"
        )

    def warning(self) -> str:
        """What plan says beside the deletes it shows."""
        return (
            f"apply will refuse to delete {self.reason()} without {CONSENT_FLAG}: "
            "the catalog may be incomplete"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "deletes": self.deletes,
            "live": self.live,
            "max_delete_share": str(self.max_share),
            "refused": self.refusal(),
        }


def mass_delete(marketplace: str, deletes: int, live: int, max_share: Decimal) -> MassDelete | None:
    """The deletes as a MassDelete when they need consent, None when they do not."""
    if deletes <= FREE_DELETES or Decimal(deletes) <= max_share * max(live, deletes):
        return None
    return MassDelete(marketplace, deletes, live, max_share)


def _percent(share: Decimal) -> str:
    """A share as a percentage, rounded up to 0.1 so that 10.01% never reads as 10%."""
    text = f"{(share * 100).quantize(Decimal('0.1'), rounding=ROUND_UP):f}"
    return (text.removesuffix(".0") or "0") + "%"
