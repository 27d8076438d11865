"""The typed change a connector is handed: one saved change record, as apply reads it.

A plan file keeps its changes as JSON objects (``engine.sync._planfile.change_record``, format
version 2); the executor turns each into a :class:`ChangeRecord` once, where it reads the plan,
so no connector indexes an untyped mapping. The record holds exactly what the saved change
holds; the plan file's format does not depend on this class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from engine.model._listing import Listing

RouteKind = Literal["create", "content", "price", "stock", "delete"]
"""What a call sends: a new listing, its whole content, its price, its quantity, its withdrawal."""


@dataclass(frozen=True)
class ChangeRecord:
    """One SKU's saved change on one marketplace: the op, what changed, the bodies the plan showed."""

    op: str
    """"create", "update" or "delete" (a plan also saves "unchanged" and "invalid", never sent)."""
    sku_id: str
    marketplace: str = ""
    fields: tuple[str, ...] = ()
    """For an update, the parts that changed: any of "content", "price", "stock"."""
    payloads: tuple[Any, ...] = ()
    """The request bodies the plan showed, in the order they are sent."""
    after: Mapping[str, Any] | None = None
    """The listing as the rules give it now (``Listing.to_dict`` in JSON form); None for a delete."""
    before: Mapping[str, Any] | None = None
    """The state store's row the plan saw: price, sale_price, quantity, content_hash, remote_id."""
    family: tuple[str, ...] = ()
    """For a create of a family listed as one (Mercado Libre variations): every member's SKU id."""
    reasons: tuple[Mapping[str, Any], ...] = ()
    digest: str = ""
    source_hash: str | None = None
    """The hash of the catalog record planned, recorded with the row (a plan made now; never saved)."""

    @classmethod
    def of(cls, change: ChangeRecord | Mapping[str, Any]) -> ChangeRecord:
        """The record for a saved change (a plan file's JSON object); a record is returned as is."""
        if isinstance(change, ChangeRecord):
            return change
        return cls(
            op=str(change["op"]),
            sku_id=str(change["sku_id"]),
            marketplace=str(change.get("marketplace") or ""),
            fields=tuple(str(kind) for kind in change.get("fields") or ()),
            payloads=tuple(change.get("payloads") or ()),
            after=change.get("after"),
            before=change.get("before"),
            family=tuple(str(sku) for sku in change.get("family") or ()),
            reasons=tuple(change.get("reasons") or ()),
            digest=str(change.get("digest") or ""),
            source_hash=change.get("source_hash"),
        )

    @property
    def listing(self) -> Listing | None:
        """The listing after the change, None for a delete."""
        return Listing.from_dict(dict(self.after)) if self.after is not None else None

    @property
    def leader(self) -> str | None:
        """The family member whose request carries the whole family (the first SKU id), or None."""
        return min(self.family) if self.family else None

    @property
    def route_kinds(self) -> tuple[RouteKind, ...]:
        """What the change's calls send: "create", "delete", "content", or the price and/or stock
        an update changed (content, when it changed, is sent whole and carries them)."""
        if self.op in ("create", "delete"):
            return ("create",) if self.op == "create" else ("delete",)
        if "content" in self.fields:
            return ("content",)
        return tuple(kind for kind in ("price", "stock") if kind in self.fields)
