"""Which number to buy for a pool (SPEC §6): the same area code, then the same region, then toll-free."""

from __future__ import annotations

import random
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


class SharedSearch:
    """One carrier search serving several purchases: a carrier task's orders, a reconcile pass. The
    numbers a search found for some criteria are handed out one by one, at random, before the carrier
    is asked again; a search that found none is not repeated. Live for one batch (seconds): what it
    hands out may have been sold meanwhile, and the purchase then chooses another."""

    def __init__(self, carrier: Carrier) -> None:
        self.carrier = carrier
        self._found: dict[tuple[str, str, str], list[AvailableNumber]] = {}
        self._none: set[tuple[str, str, str]] = set()  # searches that found nothing

    def find(
        self, *, number_type: str, area_code: str = "", region: str = "", exclude: Collection[str] = ()
    ) -> AvailableNumber | None:
        key = (number_type, area_code, region)
        if key in self._none:
            return None
        left = [offer for offer in self._found.get(key, []) if offer.number not in exclude]
        if not left:  # none found yet, all handed out, or all sold meanwhile: ask the carrier
            left = self.carrier.offers(
                number_type=number_type, area_code=area_code, region=region, exclude=exclude
            )
            if not left:
                if not exclude:  # nothing at all for these criteria (not just nothing new)
                    self._none.add(key)
                return None
        chosen = random.choice(left)  # spreading concurrent buyers, not a secret
        left.remove(chosen)
        self._found[key] = left
        return chosen

    def discard(self, number: str) -> None:
        """A number found sold to someone else: no other purchase of the batch tries it."""
        for offers in self._found.values():
            offers[:] = [offer for offer in offers if offer.number != number]


def number_choose(
    *, pool: RingPool, carrier: Carrier, exclude: Collection[str] = (), search: SharedSearch | None = None
) -> NumberChoice | None:
    """The number to buy for `pool`: a local pool takes the same area code, then the same region (the
    state), then toll-free; a toll-free pool takes toll-free. None when the carrier has nothing to
    offer. `exclude`: numbers an attempt found sold to someone else meanwhile. `search`: a search
    shared with the other purchases of a batch (else each choice asks the carrier)."""
    find = search.find if search is not None else carrier.find_available
    if pool.number_type == NumberType.TOLL_FREE:
        found = find(number_type=NumberType.TOLL_FREE, exclude=exclude)
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
        found = find(**criteria, exclude=exclude)
        if found is not None:
            return NumberChoice(found, match)
    return None
