"""Which number to buy for a pool (SPEC §6): the same area code, then the same region, then toll-free."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ringpools.choices import NumberType
from ringpools.models import RingPool
from ringpools.phone import state_of, state_of_area_code
from scaling.supply.carrier import AvailableNumber, Carrier

# How each match reads in a growth event's reason.
MATCH_WORDS = {
    "area_code": "same area code",
    "region": "same region (no number left in the area code)",
    "area_region": "same region as the area code (no number left in the area code)",
    "any_local": "a local number (the pool names no area code or region)",
    "toll_free": "toll-free pool",
    "toll_free_fallback": "toll-free fallback (no local number in the area code or region)",
}


@dataclass(frozen=True)
class NumberChoice:
    available: AvailableNumber
    match: str  # a key of MATCH_WORDS


def wanted_state(pool: RingPool) -> tuple[str, str]:
    """The state a local pool's "same region" means, and the match it stands for: the state its region
    names however it is written ("Santa Barbara, CA", "California", "ca"), else the state its area
    code serves ("805" → "CA"). ("", "") when neither names a US state."""
    state = state_of(pool.region)
    if state:
        return state, "region"
    state = state_of_area_code(pool.area_code)
    return (state, "area_region") if state else ("", "")


def number_choose(*, pool: RingPool, carrier: Carrier, exclude: Collection[str] = ()) -> NumberChoice | None:
    """The number to buy for `pool`: a local pool takes the same area code, then the same region (the
    state), then toll-free; a toll-free pool takes toll-free. None when the carrier has nothing to
    offer. `exclude`: numbers an attempt found sold to someone else meanwhile."""
    if pool.number_type == NumberType.TOLL_FREE:
        found = carrier.find_available(number_type=NumberType.TOLL_FREE, exclude=exclude)
        return NumberChoice(found, "toll_free") if found else None
    searches: list[tuple[str, dict[str, Any]]] = []
    if pool.area_code:
        searches.append(("area_code", {"number_type": NumberType.LOCAL, "area_code": pool.area_code}))
    state, match = wanted_state(pool)
    if state:
        searches.append((match, {"number_type": NumberType.LOCAL, "region": state}))
    if not searches:
        searches.append(("any_local", {"number_type": NumberType.LOCAL}))
    searches.append(("toll_free_fallback", {"number_type": NumberType.TOLL_FREE}))
    for match, criteria in searches:
        found = carrier.find_available(**criteria, exclude=exclude)
        if found is not None:
            return NumberChoice(found, match)
    return None
