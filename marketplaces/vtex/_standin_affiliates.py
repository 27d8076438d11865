"""The VTEX stand-in's affiliates and the change notifications it posts to their Search Endpoints.

An affiliate is an id (three consonants) and the URL VTEX posts to, kept exactly as registered
(query string included: the secret travels there). :meth:`Affiliates.notify` posts the
Broadcaster body for one SKU to every affiliate from background tasks, so the change that caused
it is answered at once. VTEX documents no retry policy (NOTIFICATIONS.md, section 3: best effort);
the stand-in retries a failed delivery (no answer, or not 2xx) ``attempts`` times in all with
doubling backoff, then gives it up, so a down endpoint costs a few requests and never breaks
the stand-in. ``deliveries`` records each outcome for tests and the sandbox.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

__all__ = ["AFFILIATE_ID", "Affiliates", "Delivery"]

AFFILIATE_ID = re.compile(r"[B-DF-HJ-NP-TV-Z]{3}")
"""VTEX's affiliate id: exactly three consonants (upper case)."""


@dataclass
class Delivery:
    """One notification's fate: ``delivered`` (a 2xx answered) or ``given up`` after ``attempts``."""

    affiliate: str
    sku_id: str
    outcome: str
    attempts: int


@dataclass
class Affiliates:
    """The store's affiliates and their notifier (see the module docstring)."""

    account: str = "sandbox"
    attempts: int = 5
    backoff: float = 0.5
    """Seconds before the first retry; each next wait doubles."""
    timeout: float = 5.0
    endpoints: dict[str, str] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def register(self, affiliate: str, endpoint: str) -> None:
        """Create or replace an affiliate (as ``PUT /fulfillment/pvt/affiliates/{id}`` does)."""
        if not AFFILIATE_ID.fullmatch(affiliate):
            raise ValueError(f"affiliate id {affiliate!r} is not three consonants")
        self.endpoints[affiliate] = endpoint

    def notify(self, sku_id: str, product_id: object, **flags: bool) -> list[str]:
        """Post the SKU's change to every affiliate in the background; the ids notified."""
        date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        for affiliate, endpoint in self.endpoints.items():
            body = {
                "IdSku": sku_id,
                "ProductId": product_id,
                "An": self.account,
                "IdAffiliate": affiliate,
                "DateModified": date,
                "IsActive": True,
                "StockModified": False,
                "PriceModified": False,
                "HasStockKeepingUnitModified": False,
                "HasStockKeepingUnitRemovedFromAffiliate": False,
                **flags,
            }
            task = asyncio.get_running_loop().create_task(self._deliver(affiliate, endpoint, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return list(self.endpoints)

    async def _deliver(self, affiliate: str, endpoint: str, body: dict[str, Any]) -> None:
        wait = self.backoff
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            for attempt in range(1, self.attempts + 1):
                try:
                    answer = await client.post(endpoint, json=body)
                    if answer.is_success:
                        self.deliveries.append(Delivery(affiliate, body["IdSku"], "delivered", attempt))
                        return
                except httpx.HTTPError:
                    pass
                if attempt < self.attempts:
                    await asyncio.sleep(wait)
                    wait *= 2
        self.deliveries.append(Delivery(affiliate, body["IdSku"], "given up", self.attempts))
