"""Phone-number facts from `phonenumbers`: E.164, display form, area code, region, toll-free."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from django.core.exceptions import ValidationError
from phonenumbers import PhoneNumberType, geocoder

from ringpools.choices import NumberType

US_STATES = {
    "Alabama": "AL",
    "Alaska": "AK",
    "Arizona": "AZ",
    "Arkansas": "AR",
    "California": "CA",
    "Colorado": "CO",
    "Connecticut": "CT",
    "Delaware": "DE",
    "District of Columbia": "DC",
    "Florida": "FL",
    "Georgia": "GA",
    "Hawaii": "HI",
    "Idaho": "ID",
    "Illinois": "IL",
    "Indiana": "IN",
    "Iowa": "IA",
    "Kansas": "KS",
    "Kentucky": "KY",
    "Louisiana": "LA",
    "Maine": "ME",
    "Maryland": "MD",
    "Massachusetts": "MA",
    "Michigan": "MI",
    "Minnesota": "MN",
    "Mississippi": "MS",
    "Missouri": "MO",
    "Montana": "MT",
    "Nebraska": "NE",
    "Nevada": "NV",
    "New Hampshire": "NH",
    "New Jersey": "NJ",
    "New Mexico": "NM",
    "New York": "NY",
    "North Carolina": "NC",
    "North Dakota": "ND",
    "Ohio": "OH",
    "Oklahoma": "OK",
    "Oregon": "OR",
    "Pennsylvania": "PA",
    "Rhode Island": "RI",
    "South Carolina": "SC",
    "South Dakota": "SD",
    "Tennessee": "TN",
    "Texas": "TX",
    "Utah": "UT",
    "Vermont": "VT",
    "Virginia": "VA",
    "Washington": "WA",
    "West Virginia": "WV",
    "Wisconsin": "WI",
    "Wyoming": "WY",
}


STATE_CODES = frozenset(US_STATES.values())
_STATE_NAMES = {name.casefold(): code for name, code in US_STATES.items()}


def state_of(region: str) -> str:
    """The US state code a region names, written as people write it: "CA", "ca", "California",
    "Santa Barbara, CA", "Santa Barbara, California", "Santa Barbara CA"; "" when it names none."""
    text = " ".join(region.replace(".", "").split())
    if not text:
        return ""
    candidates = [text.rpartition(",")[2].strip(), text, text.split()[-1]]
    for candidate in candidates:
        if candidate.upper() in STATE_CODES and len(candidate) == 2:
            return candidate.upper()
        if candidate.casefold() in _STATE_NAMES:
            return _STATE_NAMES[candidate.casefold()]
    return ""


def validate_region(value: str) -> None:
    """A pool's region must name a US state (growth matches numbers on it), in any of the ways
    `state_of` reads."""
    if value.strip() and not state_of(value):
        raise ValidationError(
            'Name a US state: "CA", "California" or "Santa Barbara, CA" (%(value)s names none).',
            params={"value": value},
            code="region_not_a_state",
        )


@lru_cache(maxsize=1024)
def state_of_area_code(area_code: str) -> str:
    """The US state a North American area code serves, from phonenumbers' geocoder ("805" → "CA");
    "" for an area code outside the US states or unknown to it."""
    if len(area_code) != 3 or not area_code.isdigit():
        return ""
    try:
        parsed = phonenumbers.parse(f"+1{area_code}5550100")  # a fictional line in that area code
    except phonenumbers.NumberParseException:
        return ""
    return state_of(geocoder.description_for_number(parsed, "en"))


class InvalidPhoneNumber(ValueError):
    pass


@dataclass(frozen=True)
class NumberFacts:
    e164: str
    display: str
    number_type: str
    area_code: str
    region: str  # US state code where known, e.g. "CA"


def parse(raw: str, region: str = "US") -> phonenumbers.PhoneNumber:
    try:
        parsed = phonenumbers.parse(str(raw), region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"{raw!r} is not a phone number") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber(f"{raw!r} is not a possible phone number")
    return parsed


def to_e164(raw: str) -> str:
    return phonenumbers.format_number(parse(raw), phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=65536)
def display(e164: str) -> str:
    """'(805) 555-0100' for North American numbers, the international form elsewhere.

    Every hand-out answer carries it: a North American number (+1, an area code from 2 to 9, ten
    digits), which phonenumbers formats the same way in every NANP country, skips the parse
    (tests/test_phone.py)."""
    if len(e164) == 12 and e164.startswith("+1") and e164[2] in "23456789" and e164[2:].isdigit():
        return f"({e164[2:5]}) {e164[5:8]}-{e164[8:]}"
    parsed = parse(e164)
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if parsed.country_code == 1
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(parsed, fmt)


def facts(raw: str) -> NumberFacts:
    parsed = parse(raw)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    nsn = phonenumbers.national_significant_number(parsed)
    toll_free = phonenumbers.number_type(parsed) == PhoneNumberType.TOLL_FREE
    area_len = 0 if toll_free else phonenumbers.length_of_geographical_area_code(parsed)
    if parsed.country_code == 1 and not toll_free:
        area_len = 3  # NANP: the first three digits are the area code even for fictional 555 numbers
    return NumberFacts(
        e164=e164,
        display=display(e164),
        number_type=NumberType.TOLL_FREE if toll_free else NumberType.LOCAL,
        area_code=nsn[:area_len] if area_len else "",
        region="" if toll_free else region_of(geocoder.description_for_number(parsed, "en")),
    )


def region_of(description: str) -> str:
    """The region growth matches on: the US state code ("CA") where the geocoder names one."""
    if len(description) > 4 and description[-4:-2] == ", ":
        return description[-2:]
    return US_STATES.get(description, description)
