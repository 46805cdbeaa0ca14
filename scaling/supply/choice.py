"""Which number to buy for a pool (SPEC §6): the same area code, then the same region, then toll-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ringpools.choices import NumberType
from ringpools.models import RingPool
from scaling.supply.carrier import AvailableNumber, Carrier

# How each match reads in a growth event's reason.
MATCH_WORDS = {
    "area_code": "same area code",
    "region": "same region (no number left in the area code)",
    "any_local": "a local number (the pool names no area code or region)",
    "toll_free": "toll-free pool",
    "toll_free_fallback": "toll-free fallback (no local number in the area code or region)",
}


@dataclass(frozen=True)
class NumberChoice:
    available: AvailableNumber
    match: str  # a key of MATCH_WORDS


def number_choose(*, pool: RingPool, carrier: Carrier) -> NumberChoice | None:
    """The number to buy for `pool`: a local pool takes the same area code, then the same region,
    then toll-free; a toll-free pool takes toll-free. None when the carrier has nothing to offer."""
    if pool.number_type == NumberType.TOLL_FREE:
        found = carrier.find_available(number_type=NumberType.TOLL_FREE)
        return NumberChoice(found, "toll_free") if found else None
    searches: list[tuple[str, dict[str, Any]]] = []
    if pool.area_code:
        searches.append(("area_code", {"number_type": NumberType.LOCAL, "area_code": pool.area_code}))
    if pool.region:
        searches.append(("region", {"number_type": NumberType.LOCAL, "region": pool.region}))
    if not searches:
        searches.append(("any_local", {"number_type": NumberType.LOCAL}))
    searches.append(("toll_free_fallback", {"number_type": NumberType.TOLL_FREE}))
    for match, criteria in searches:
        found = carrier.find_available(**criteria)
        if found is not None:
            return NumberChoice(found, match)
    return None
