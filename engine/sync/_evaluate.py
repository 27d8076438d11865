"""Run a compiled rule file over one catalog record: the steps of the plan.

select -> categorize -> build listing -> group variations -> price -> stock ->
require -> the marketplace's own requirements. Every step that fails adds a
:class:`Reason` carrying the rule's file:line:col and the run goes on to the
next SKU; one bad SKU never stops the rest. The steps of one rule file are
written out as one function when the evaluator is made (:mod:`engine.sync._unrolled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from engine._diagnostics import Span
from engine.connectors._contract import Connector
from engine.model._listing import Reason
from engine.rules._compiled import CompiledRules
from engine.sync._unrolled import Evaluate, unrolled

__all__ = ["SkuEvaluator"]


class SkuEvaluator:
    """The compiled steps for one marketplace, applied to records one at a time."""

    def __init__(self, compiled: CompiledRules, connector: Connector) -> None:
        self.compiled = compiled
        self.connector = connector
        self.marketplace = compiled.marketplace
        self.currency = compiled.price.currency
        self.exponent = Decimal(1).scaleb(-compiled.price.places)
        self.listing_spans: dict[str, Span] = {}
        """Each listing field's rule, and each nested field's after it: where a marketplace's
        objection points, and what ``explain`` shows of the listing, in this order."""
        for key, field in compiled.listing.items():
            self.listing_spans[f"listing.{key}"] = field.span
            if isinstance(field.children, dict):
                for child_key, child in field.children.items():
                    self.listing_spans[f"listing.{key}.{child_key}"] = child.span
        self.categories_span = compiled.categories_span
        self.evaluate: Evaluate = unrolled(self)
        """``evaluate(record, explain=False)``: the outcome for one record, within one SKU's budget
        of work (:mod:`engine.rules._limits`): the rule file's steps as one function."""

    def connector_reasons(self, found: Sequence[Reason], reasons: list[Reason]) -> None:
        """Add the marketplace's own objections to ``reasons``, each pointing at the listing rule
        it is about; one the rule file already raised (the same message) is not said twice."""
        seen = {r.message for r in reasons}
        for reason in found:
            if reason.message in seen:  # the rule file already checks the same thing
                continue
            span = self.listing_spans.get(reason.rule) or self.listing_spans.get(
                reason.rule.rsplit(".", 1)[0]
            )
            reasons.append(Reason(reason.code, reason.message, f"{self.marketplace}: {reason.rule}", span))
