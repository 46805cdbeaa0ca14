"""The inventory carrier (RINGPOOL_CARRIER=inventory): sells from a stock kept in the database.

The demo's carrier, and the tests'. It can be told to fail on purpose, to exercise the outbox's fault
handling, and to answer as slowly as a real carrier (`RINGPOOL_INVENTORY_LATENCY_SECONDS` per call),
so that benchmarks see the time a pass would spend waiting on one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Iterable, Iterator

from django.conf import settings
from django.utils import timezone

from scaling.models import InventoryNumber
from scaling.supply.carrier import (
    AvailableNumber,
    CarrierError,
    NumberUnavailableError,
    OffersSearch,
    PurchasedNumber,
)

# A search answers one of the first numbers on offer, at random, as a real carrier's list does.
OFFERED = 20


class InventoryCarrier(OffersSearch):
    """Sells from `InventoryNumber` rows. `faults` makes the next calls of an operation fail on purpose:
    {"purchase": [...]} before buying, {"purchase_after": [...]} after buying (a time-out that hid a
    success), {"release": [...]}, {"find_purchased": [...]}, {"find_available": [...]},
    {"list_purchased": [...]}, one error per call, then normal service."""

    def __init__(
        self, *, faults: dict[str, Iterable[CarrierError]] | None = None, latency: float | None = None
    ) -> None:
        self.faults = {operation: list(errors) for operation, errors in (faults or {}).items()}
        self.latency = settings.RINGPOOL_INVENTORY_LATENCY_SECONDS if latency is None else latency

    def _maybe_fail(self, operation: str) -> None:
        pending = self.faults.get(operation)
        if pending:
            raise pending.pop(0)

    def _wait(self) -> None:
        if self.latency > 0:
            time.sleep(self.latency)

    def offers(
        self,
        *,
        number_type: str,
        area_code: str = "",
        region: str = "",
        exclude: Collection[str] = (),
        limit: int = OFFERED,
    ) -> list[AvailableNumber]:
        self._wait()
        self._maybe_fail("find_available")
        stock = InventoryNumber.objects.filter(sold_to__isnull=True, number_type=number_type)
        if area_code:
            stock = stock.filter(area_code=area_code)
        if region:
            stock = stock.filter(region__iexact=region)
        if exclude:
            stock = stock.exclude(number__in=list(exclude))
        # `limit` numbers drawn from the first ten times as many, as a real carrier's search answers
        # different buyers with different numbers: eight workers in one area rarely want the same.
        window = list(stock.order_by("number")[: limit * 10])
        return [
            AvailableNumber(
                number=str(item.number),
                number_type=item.number_type,
                area_code=item.area_code,
                region=item.region,
                monthly_cost=item.monthly_cost,
            )
            for item in random.sample(window, min(limit, len(window)))
        ]

    def purchase(self, available: AvailableNumber, *, account_id: int, friendly_name: str) -> PurchasedNumber:
        self._wait()
        self._maybe_fail("purchase")
        item = InventoryNumber.objects.filter(number=available.number).first()
        # Compare-and-swap: two buyers of the same number, only one row changes.
        sold = InventoryNumber.objects.filter(number=available.number, sold_to__isnull=True).update(
            sold_to_id=account_id, sold_at=timezone.now(), friendly_name=friendly_name
        )
        if item is None or not sold:
            raise NumberUnavailableError(f"{available.number} is no longer available")
        item.friendly_name = friendly_name
        self._maybe_fail("purchase_after")
        return self._purchased(item)

    def find_purchased(self, *, friendly_name: str) -> PurchasedNumber | None:
        self._wait()
        self._maybe_fail("find_purchased")
        item = InventoryNumber.objects.filter(friendly_name=friendly_name, sold_to__isnull=False).first()
        return self._purchased(item) if item is not None else None

    def list_purchased(self) -> Iterator[PurchasedNumber]:
        self._wait()
        self._maybe_fail("list_purchased")
        for item in InventoryNumber.objects.filter(sold_to__isnull=False).order_by("pk").iterator(2000):
            yield self._purchased(item)

    def release(self, carrier_ref: str) -> None:
        self._wait()
        self._maybe_fail("release")
        if carrier_ref.startswith("INV") and carrier_ref[3:].isdigit():
            InventoryNumber.objects.filter(pk=int(carrier_ref[3:])).update(
                sold_to=None, sold_at=None, friendly_name=""
            )

    @staticmethod
    def _purchased(item: InventoryNumber) -> PurchasedNumber:
        return PurchasedNumber(
            number=str(item.number),
            number_type=item.number_type,
            area_code=item.area_code,
            region=item.region,
            monthly_cost=item.monthly_cost,
            carrier_ref=f"INV{item.pk}",
            friendly_name=item.friendly_name,
        )
