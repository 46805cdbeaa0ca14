"""Display forms of numbers: the hand-out's shortcut for North American numbers agrees with phonenumbers."""

from __future__ import annotations

import phonenumbers
import pytest

from ringpools import phone


def formatted_by_phonenumbers(e164: str) -> str:
    parsed = phonenumbers.parse(e164, None)
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if parsed.country_code == 1
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(parsed, fmt)


@pytest.mark.parametrize(
    "e164",
    [
        "+18055550100",  # US local
        "+18885550123",  # US toll-free
        "+14165550199",  # Canada
        "+18765550100",  # Jamaica (NANP outside the US)
        "+16715550100",  # Guam
        "+12001000000",  # the benchmark's invented numbers
        "+11005550100",  # no area code starts with 1: phonenumbers does not format it as one
    ],
)
def test_north_american_numbers_display_as_phonenumbers_formats_them(e164):
    assert phone.display(e164) == formatted_by_phonenumbers(e164)


@pytest.mark.parametrize("e164", ["+442079460000", "+4930901820", "+61291234567"])
def test_numbers_elsewhere_display_in_the_international_form(e164):
    assert phone.display(e164) == formatted_by_phonenumbers(e164)
    assert phone.display(e164).startswith("+")
