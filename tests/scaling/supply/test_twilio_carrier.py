"""The Twilio adapter against recorded HTTP answers (never the network): search by area code, region
and toll-free, buy under our request id, find a purchase again by that id, release, and errors mapped
to transient (try again later) or permanent (the carrier's message in the failed event)."""

from __future__ import annotations

import pytest
import requests
import responses
from django.core.exceptions import ImproperlyConfigured
from responses import matchers

from ringpools.choices import NumberType
from scaling.supply.carrier import (
    AvailableNumber,
    CarrierError,
    NumberUnavailableError,
    TransientCarrierError,
    get_carrier,
)
from scaling.supply.twilio_carrier import TwilioCarrier

SID = "AC00000000000000000000000000000001"
API = f"https://api.twilio.com/2010-04-01/Accounts/{SID}"
PN = "PN11111111111111111111111111111111"


def page(name: str, items: list[dict], uri: str) -> dict:
    """A list answer as Twilio's 2010 API gives it (one page)."""
    return {
        name: items,
        "end": max(len(items) - 1, 0),
        "first_page_uri": uri,
        "next_page_uri": None,
        "page": 0,
        "page_size": 1,
        "previous_page_uri": None,
        "start": 0,
        "uri": uri,
    }


def available(number: str, locality: str = "Santa Barbara", region: str = "CA") -> dict:
    return {
        "friendly_name": number,
        "phone_number": number,
        "lata": "722",
        "locality": locality,
        "rate_center": locality.upper(),
        "latitude": "34.420800",
        "longitude": "-119.698200",
        "region": region,
        "postal_code": "93101",
        "iso_country": "US",
        "address_requirements": "none",
        "beta": False,
        "capabilities": {"voice": True, "SMS": True, "MMS": True},
    }


def incoming(number: str, friendly_name: str) -> dict:
    return {
        "account_sid": SID,
        "sid": PN,
        "friendly_name": friendly_name,
        "phone_number": number,
        "voice_url": "https://calls.example.com/webhooks/calls",
        "voice_method": "POST",
        "status": "in-use",
        "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
        "date_created": "Thu, 26 Nov 2026 15:00:00 +0000",
        "uri": f"/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers/{PN}.json",
    }


def error(status: int, code: int, message: str) -> dict:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@pytest.fixture
def carrier() -> TwilioCarrier:
    return TwilioCarrier(
        account_sid=SID, auth_token="secret", voice_url="https://calls.example.com/webhooks/calls"
    )


@responses.activate
def test_it_searches_local_numbers_by_area_code(carrier):
    url = f"{API}/AvailablePhoneNumbers/US/Local.json"
    responses.get(
        url,
        match=[matchers.query_param_matcher({"AreaCode": "805", "VoiceEnabled": "true", "PageSize": "20"})],
        json=page("available_phone_numbers", [available("+18055550142")], url),
    )
    found = carrier.find_available(number_type=NumberType.LOCAL, area_code="805")
    assert found == AvailableNumber(
        number="+18055550142",
        number_type="local",
        area_code="805",
        region="CA",
        monthly_cost=found.monthly_cost,
    )
    assert str(found.monthly_cost) == "1.15"


@responses.activate
def test_it_searches_by_state_and_skips_numbers_another_buyer_took_meanwhile(carrier):
    url = f"{API}/AvailablePhoneNumbers/US/Local.json"
    responses.get(
        url,
        match=[matchers.query_param_matcher({"InRegion": "CA", "VoiceEnabled": "true", "PageSize": "21"})],
        json=page("available_phone_numbers", [available("+18055550177"), available("+18055550178")], url),
    )
    responses.get(
        url,
        match=[matchers.query_param_matcher({"InRegion": "NV", "VoiceEnabled": "true", "PageSize": "20"})],
        json=page("available_phone_numbers", [], url),
    )
    found = carrier.find_available(number_type="local", region="CA", exclude={"+18055550177"})
    assert found.number == "+18055550178"
    assert carrier.find_available(number_type="local", region="NV") is None


@responses.activate
def test_it_lists_every_number_the_account_holds_across_pages(carrier):
    url = f"{API}/IncomingPhoneNumbers.json"
    first = page("incoming_phone_numbers", [incoming("+18055550142", "ringpool-7-abc")], url)
    first["next_page_uri"] = (
        f"/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers.json?PageSize=1000&Page=1&PageToken=PA1"
    )
    second = page("incoming_phone_numbers", [{**incoming("+18055550143", "main line"), "sid": "PN2"}], url)
    responses.get(url, match=[matchers.query_param_matcher({"PageSize": "1000"})], json=first)
    responses.get(
        url,
        match=[matchers.query_param_matcher({"PageSize": "1000", "Page": "1", "PageToken": "PA1"})],
        json=second,
    )
    held = list(carrier.list_purchased())
    assert [(n.number, n.friendly_name, n.carrier_ref) for n in held] == [
        ("+18055550142", "ringpool-7-abc", PN),
        ("+18055550143", "main line", "PN2"),
    ]


@responses.activate
def test_it_searches_toll_free_numbers(carrier):
    url = f"{API}/AvailablePhoneNumbers/US/TollFree.json"
    responses.get(
        url,
        json=page("available_phone_numbers", [available("+18885550123", locality="", region="")], url),
    )
    found = carrier.find_available(number_type=NumberType.TOLL_FREE)
    assert found.number_type == NumberType.TOLL_FREE and found.area_code == ""
    assert str(found.monthly_cost) == "2.15"


@responses.activate
def test_it_buys_under_our_request_id_with_the_voice_webhook_and_finds_the_purchase_again(carrier):
    offer = AvailableNumber("+18055550142", "local", "805", "CA", monthly_cost=0)
    responses.post(
        f"{API}/IncomingPhoneNumbers.json",
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "PhoneNumber": "+18055550142",
                    "FriendlyName": "ringpool-7-abc",
                    "VoiceUrl": "https://calls.example.com/webhooks/calls",
                    "VoiceMethod": "POST",
                }
            )
        ],
        json=incoming("+18055550142", "ringpool-7-abc"),
        status=201,
    )
    bought = carrier.purchase(offer, account_id=7, friendly_name="ringpool-7-abc")
    assert (bought.number, bought.carrier_ref, bought.area_code, bought.region) == (
        "+18055550142",
        PN,
        "805",
        "CA",
    )

    url = f"{API}/IncomingPhoneNumbers.json"
    responses.get(
        url,
        match=[matchers.query_param_matcher({"FriendlyName": "ringpool-7-abc", "PageSize": "1"})],
        json=page("incoming_phone_numbers", [incoming("+18055550142", "ringpool-7-abc")], url),
    )
    responses.get(
        url,
        match=[matchers.query_param_matcher({"FriendlyName": "ringpool-7-none", "PageSize": "1"})],
        json=page("incoming_phone_numbers", [], url),
    )
    assert carrier.find_purchased(friendly_name="ringpool-7-abc").carrier_ref == PN
    assert carrier.find_purchased(friendly_name="ringpool-7-none") is None


@responses.activate
def test_it_releases_and_a_number_released_already_is_not_an_error(carrier):
    responses.delete(f"{API}/IncomingPhoneNumbers/{PN}.json", status=204)
    carrier.release(PN)
    responses.delete(
        f"{API}/IncomingPhoneNumbers/PN404.json",
        status=404,
        json=error(404, 20404, "The requested resource was not found"),
    )
    carrier.release("PN404")


@responses.activate
@pytest.mark.parametrize(
    ("status", "code", "message", "transient"),
    [
        (400, 21452, "No phone numbers found", False),
        (400, 21422, "PhoneNumber is not available", False),
        (401, 20003, "Authenticate", False),
        (429, 20429, "Too Many Requests", True),
        (500, 20500, "Internal Server Error", True),
        (503, 20503, "Service Unavailable", True),
    ],
)
def test_error_answers_are_mapped_to_transient_or_permanent_with_twilios_message(
    carrier, status, code, message, transient
):
    offer = AvailableNumber("+18055550142", "local", "805", "CA", monthly_cost=0)
    responses.post(f"{API}/IncomingPhoneNumbers.json", status=status, json=error(status, code, message))
    with pytest.raises(CarrierError) as raised:
        carrier.purchase(offer, account_id=7, friendly_name="ringpool-7-abc")
    assert isinstance(raised.value, TransientCarrierError) is transient
    assert isinstance(raised.value, NumberUnavailableError) is (code == 21422)  # choose another number
    assert f"code {code}" in str(raised.value) and message in str(raised.value)


@responses.activate
@pytest.mark.parametrize(
    "failure", [requests.ReadTimeout("read timed out"), requests.ConnectionError("reset")]
)
def test_no_answer_is_transient(carrier, failure):
    responses.post(f"{API}/IncomingPhoneNumbers.json", body=failure)
    offer = AvailableNumber("+18055550142", "local", "805", "CA", monthly_cost=0)
    with pytest.raises(TransientCarrierError, match="got no answer"):
        carrier.purchase(offer, account_id=7, friendly_name="ringpool-7-abc")


def test_the_setting_picks_twilio_and_it_refuses_to_run_without_credentials(settings):
    settings.RINGPOOL_CARRIER = "twilio"
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "", ""
    with pytest.raises(ImproperlyConfigured):
        get_carrier()
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = SID, "secret"
    settings.RINGPOOL_PUBLIC_BASE_URL = "https://calls.example.com/"
    chosen = get_carrier()
    assert (
        isinstance(chosen, TwilioCarrier) and chosen.voice_url == "https://calls.example.com/webhooks/calls"
    )


@pytest.mark.django_db
@responses.activate
def test_a_grow_pass_through_twilio_falls_back_to_toll_free_and_records_the_carriers_reference(carrier):
    from datetime import UTC, datetime, timedelta

    from ringpools.models import RingPool
    from scaling.choices import EventKind
    from scaling.growth.run import ringpools_grow
    from scaling.models import ScalingEvent
    from tests import factories

    pool = factories.RingPoolFactory(area_code="805", region="CA", max_size=5)
    factories.PromoNumberFactory(pool=pool)
    now = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    ringpools_grow(now=now - timedelta(minutes=1), carrier=carrier)
    RingPool.objects.filter(pk=pool.pk).update(last_overflow_at=now - timedelta(seconds=20))
    local, toll_free = (
        f"{API}/AvailablePhoneNumbers/US/Local.json",
        f"{API}/AvailablePhoneNumbers/US/TollFree.json",
    )
    responses.get(local, json=page("available_phone_numbers", [], local))  # none by area code, none in CA
    responses.get(
        toll_free, json=page("available_phone_numbers", [available("+18885550123", "", "")], toll_free)
    )
    responses.post(f"{API}/IncomingPhoneNumbers.json", json=incoming("+18885550123", "x"), status=201)

    assert ringpools_grow(now=now, carrier=carrier).added == 1

    added = ScalingEvent.objects.get(pool=pool, kind=EventKind.NUMBER_ADDED)
    assert added.figures["match"] == "toll_free_fallback" and added.figures["carrier_ref"] == PN
    assert added.number.number_type == NumberType.TOLL_FREE and str(added.number.monthly_cost) == "2.15"
    searched = [call.request.url for call in responses.calls if call.request.method == "GET"]
    assert "AreaCode=805" in searched[0] and "InRegion=CA" in searched[1] and "TollFree" in searched[2]
