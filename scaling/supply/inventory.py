"""The inventory carrier (RINGPOOL_CARRIER=inventory): sells from a stock kept in the database.

The demo's carrier, and the tests'. It can be told to fail on purpose, to exercise the outbox's fault
handling.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from scaling.models import InventoryNumber
from scaling.supply.carrier import AvailableNumber, CarrierError, PurchasedNumber


class InventoryCarrier:
    """Sells from `InventoryNumber` rows. `faults` makes the next calls of an operation fail on purpose:
    {"purchase": [...]} before buying, {"purchase_after": [...]} after buying (a time-out that hid a
    success), {"release": [...]}, {"find_purchased": [...]}, one error per call, then normal service."""

    def __init__(self, *, faults: dict[str, Iterable[CarrierError]] | None = None) -> None:
        self.faults = {operation: list(errors) for operation, errors in (faults or {}).items()}

    def _maybe_fail(self, operation: str) -> None:
        pending = self.faults.get(operation)
        if pending:
            raise pending.pop(0)

    def find_available(
        self, *, number_type: str, area_code: str = "", region: str = ""
    ) -> AvailableNumber | None:
        stock = InventoryNumber.objects.filter(sold_to__isnull=True, number_type=number_type)
        if area_code:
            stock = stock.filter(area_code=area_code)
        if region:
            stock = stock.filter(region__iexact=region)
        item = stock.order_by("number").first()
        if item is None:
            return None
        return AvailableNumber(
            number=str(item.number),
            number_type=item.number_type,
            area_code=item.area_code,
            region=item.region,
            monthly_cost=item.monthly_cost,
        )

    def purchase(self, available: AvailableNumber, *, account_id: int, friendly_name: str) -> PurchasedNumber:
        self._maybe_fail("purchase")
        item = InventoryNumber.objects.filter(number=available.number).first()
        # Compare-and-swap: two buyers of the same number, only one row changes.
        sold = InventoryNumber.objects.filter(number=available.number, sold_to__isnull=True).update(
            sold_to_id=account_id, sold_at=timezone.now(), friendly_name=friendly_name
        )
        if item is None or not sold:
            raise CarrierError(f"{available.number} is no longer available")
        self._maybe_fail("purchase_after")
        return self._purchased(item)

    def find_purchased(self, *, friendly_name: str) -> PurchasedNumber | None:
        self._maybe_fail("find_purchased")
        item = InventoryNumber.objects.filter(friendly_name=friendly_name, sold_to__isnull=False).first()
        return self._purchased(item) if item is not None else None

    def release(self, carrier_ref: str) -> None:
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
        )
