"""The carrier that sells and releases numbers: its protocol, its errors, and the registry of adapters.

`get_carrier()` builds the adapter that `RINGPOOL_CARRIER` names: a short name from `CARRIERS`, or the
dotted path of a factory (a class or function taking no arguments), as Healthchecks loads its
integrations. The adapters live beside this module (`inventory`, `twilio_carrier`) and import it;
this module imports none of them, so there is no cycle.

Errors: `TransientCarrierError` may succeed if tried again later (time-outs, 5xx, rate limits) — and a
purchase that timed out may even have succeeded; `CarrierError` otherwise (refused, not available,
bad credentials): trying again will not help; `NumberUnavailableError` when the number chosen was sold
to someone else between the search and the purchase (choose another).

Searches answer one of the first few numbers on offer, at random, so that concurrent buyers in one area
rarely want the same number.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class CarrierError(Exception):
    """The carrier refused or could not do what was asked; asking again will not help."""


class TransientCarrierError(CarrierError):
    """The carrier could not answer now (time-out, 5xx, rate limit); a later attempt may succeed."""


class NumberUnavailableError(CarrierError):
    """The number offered is no longer for sale (another buyer took it): choose another one."""


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
    friendly_name: str = ""  # what we named it when buying: our order's request id


class Carrier(Protocol):
    def offers(
        self,
        *,
        number_type: str,
        area_code: str = "",
        region: str = "",
        exclude: Collection[str] = (),
        limit: int = 20,
    ) -> list[AvailableNumber]:
        """The first numbers on offer (at most `limit`), none of `exclude`. `region`: a state code.
        One search can serve several purchases (scaling.supply.choice.SharedSearch)."""
        ...

    def find_available(
        self, *, number_type: str, area_code: str = "", region: str = "", exclude: Collection[str] = ()
    ) -> AvailableNumber | None:
        """One of the first numbers on offer (at random), none of `exclude`. `region`: a state code."""
        ...

    def purchase(
        self, available: AvailableNumber, *, account_id: int, friendly_name: str
    ) -> PurchasedNumber: ...

    def find_purchased(self, *, friendly_name: str) -> PurchasedNumber | None:
        """The number bought under this friendly name and still held, if any (reconciliation)."""
        ...

    def list_purchased(self) -> Iterator[PurchasedNumber]:
        """Every number the platform's carrier account holds (reconciliation compares it with ours).
        Raises CarrierError when the whole list cannot be read: a partial list proves nothing."""
        ...

    def release(self, carrier_ref: str) -> None:
        """Give the number back. Idempotent: releasing a number no longer held is not an error."""
        ...


class OffersSearch:
    """`find_available` for an adapter that implements `offers`: one of the numbers found, at random
    (spreading concurrent buyers, not a secret)."""

    def offers(
        self,
        *,
        number_type: str,
        area_code: str = "",
        region: str = "",
        exclude: Collection[str] = (),
        limit: int = 20,
    ) -> list[AvailableNumber]:
        raise NotImplementedError

    def find_available(
        self, *, number_type: str, area_code: str = "", region: str = "", exclude: Collection[str] = ()
    ) -> AvailableNumber | None:
        offered = self.offers(number_type=number_type, area_code=area_code, region=region, exclude=exclude)
        return random.choice(offered) if offered else None


# RINGPOOL_CARRIER's short names, each the dotted path of a factory that takes no arguments.
CARRIERS = {
    "inventory": "scaling.supply.inventory.InventoryCarrier",
    "twilio": "scaling.supply.twilio_carrier.twilio_carrier_from_settings",
}


def get_carrier() -> Carrier:
    """The adapter `RINGPOOL_CARRIER` names (a short name of CARRIERS, or a dotted path)."""
    name = settings.RINGPOOL_CARRIER
    path = CARRIERS.get(name, name)
    if "." not in path:
        raise CarrierError(f"Unknown RINGPOOL_CARRIER {name!r}")
    try:
        factory = import_string(path)
    except ImportError as error:
        raise CarrierError(f"Unknown RINGPOOL_CARRIER {name!r}: {error}") from error
    carrier: Carrier = factory()
    return carrier
