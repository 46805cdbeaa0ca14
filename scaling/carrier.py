"""The carrier that sells and releases numbers. `get_carrier()` picks the adapter from settings.

`InventoryCarrier` sells from a stock kept in the database (the demo's carrier, and the tests').
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.utils import timezone

from scaling.models import InventoryNumber


class CarrierError(Exception):
    """The carrier refused or could not sell the number."""


@dataclass(frozen=True)
class AvailableNumber:
    number: str
    number_type: str
    area_code: str
    region: str
    monthly_cost: Decimal


@dataclass(frozen=True)
class PurchasedNumber:
    number: str
    number_type: str
    area_code: str
    region: str
    monthly_cost: Decimal
    carrier_ref: str


class Carrier(Protocol):
    def find_available(
        self, *, number_type: str, area_code: str = "", region: str = ""
    ) -> AvailableNumber | None: ...

    def purchase(
        self, available: AvailableNumber, *, account_id: int, friendly_name: str
    ) -> PurchasedNumber: ...

    def release(self, carrier_ref: str) -> None: ...


class InventoryCarrier:
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
        item = InventoryNumber.objects.filter(number=available.number).first()
        # Compare-and-swap: two buyers of the same number, only one row changes.
        sold = InventoryNumber.objects.filter(number=available.number, sold_to__isnull=True).update(
            sold_to_id=account_id, sold_at=timezone.now()
        )
        if item is None or not sold:
            raise CarrierError(f"{available.number} is no longer available")
        return PurchasedNumber(
            number=available.number,
            number_type=available.number_type,
            area_code=available.area_code,
            region=available.region,
            monthly_cost=available.monthly_cost,
            carrier_ref=f"INV{item.pk}",
        )

    def release(self, carrier_ref: str) -> None:
        if carrier_ref.startswith("INV") and carrier_ref[3:].isdigit():
            InventoryNumber.objects.filter(pk=int(carrier_ref[3:])).update(sold_to=None, sold_at=None)


def get_carrier() -> Carrier:
    name = settings.RINGPOOL_CARRIER
    if name == "inventory":
        return InventoryCarrier()
    raise CarrierError(f"Unknown RINGPOOL_CARRIER {name!r}")
