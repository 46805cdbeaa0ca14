"""The carrier's voice webhook (SPEC §4): signed requests only, one Call per CallSid, attribution, routing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from twilio.request_validator import RequestValidator

from ringpools.choices import CallAttribution, NumberRole, NumberState
from ringpools.models import Call, PoolHourlyFigures, PromoNumber
from tests.factories import LeaseFactory, PromoNumberFactory, RingPoolFactory

pytestmark = pytest.mark.django_db
URL = "http://testserver/webhooks/calls"
T0 = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


def call_form(to: str, sid: str = "CA0000000000000000000000000000001", **extra) -> dict[str, str]:
    return {
        "CallSid": sid,
        "AccountSid": "ACtest",
        "From": "+12125550111",
        "To": to,
        "CallStatus": "ringing",
        "Direction": "inbound",
        **extra,
    }


def post_signed(client, form: dict[str, str], token: str = "test-auth-token", url: str = URL):
    signature = RequestValidator(token).compute_signature(url, form)
    return client.post("/webhooks/calls", data=form, headers={"X-Twilio-Signature": signature})


@pytest.fixture
def number():
    return PromoNumberFactory(number="+18055550160")


def test_a_signed_call_is_recorded_and_dialled_through(client, number):
    with time_machine.travel(T0, tick=False):
        response = post_signed(client, call_form("+18055550160"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert f"<Dial>{number.pool.destination_number.number}</Dial>" in response.content.decode()
    call = Call.objects.get()
    assert (call.number, call.pool, call.from_number, call.received_at) == (
        number,
        number.pool,
        "+12125550111",
        T0,
    )
    assert PromoNumber.objects.get(pk=number.pk).last_called_at == T0
    assert sum(PoolHourlyFigures.objects.filter(pool=number.pool).values_list("calls", flat=True)) == 1


def test_the_to_number_is_found_in_any_format(client, number):
    assert post_signed(client, call_form("(805) 555-0160")).status_code == 200
    assert Call.objects.get().number == number


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "not-a-signature",
        RequestValidator("wrong-token").compute_signature(URL, call_form("+18055550160")),
    ],
)
def test_unsigned_or_wrongly_signed_requests_are_refused_and_record_nothing(client, number, signature):
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    response = client.post("/webhooks/calls", data=call_form("+18055550160"), headers=headers)
    assert (response.status_code, response.json()["error"]) == (403, "bad_signature")
    assert not Call.objects.exists()
    assert PromoNumber.objects.get(pk=number.pk).last_called_at is None


def test_a_signature_for_other_fields_is_refused(client, number):
    form = call_form("+18055550160")
    signature = RequestValidator("test-auth-token").compute_signature(URL, form)
    tampered = dict(form, From="+13105550199")
    response = client.post("/webhooks/calls", data=tampered, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403 and not Call.objects.exists()


def test_a_signed_request_without_a_callsid_is_a_clear_400(client, number):
    form = call_form("+18055550160")
    del form["CallSid"]
    response = post_signed(client, form)
    assert response.status_code == 400 and b"CallSid" in response.content
    assert response.json()["error"] == "missing_call_sid"
    assert not Call.objects.exists()


def test_nul_characters_in_the_form_are_a_clear_400(client, number):
    response = post_signed(client, call_form("+18055550160", From="+1212\x005550111"))
    assert response.status_code == 400 and not Call.objects.exists()


def test_a_call_to_an_unknown_number_is_refused(client, number):
    assert post_signed(client, call_form("+19995550100")).status_code == 403
    assert not Call.objects.exists()


def test_carrier_retries_of_one_call_are_recorded_once(client, number):
    for _ in range(3):
        assert post_signed(client, call_form("+18055550160", sid="CAretry")).status_code == 200
    assert Call.objects.filter(call_sid="CAretry").count() == 1
    assert sum(PoolHourlyFigures.objects.filter(pool=number.pool).values_list("calls", flat=True)) == 1


def test_a_call_is_attributed_to_the_visitor_holding_the_number(client, number):
    holder = LeaseFactory(
        number=number,
        started_at=T0 - timedelta(minutes=5),
        expires_at=T0 + timedelta(minutes=25),
        params={"utm_source": "google"},
    )
    LeaseFactory(
        number=number, started_at=T0 - timedelta(hours=2), expires_at=T0 - timedelta(hours=1, minutes=30)
    )
    with time_machine.travel(T0, tick=False):
        post_signed(client, call_form("+18055550160"))
    call = Call.objects.get()
    assert (call.attribution, call.lease, call.is_overflow) == (CallAttribution.LEASE, holder, False)
    assert call.lease.params == {"utm_source": "google"}


def test_a_late_call_goes_to_the_last_holder_marked_late(client, number, settings):
    settings.RINGPOOL_LATE_CALL_GRACE_SECONDS = 600
    previous = LeaseFactory(
        number=number, started_at=T0 - timedelta(minutes=40), expires_at=T0 - timedelta(minutes=10)
    )
    with time_machine.travel(T0, tick=False):
        post_signed(client, call_form("+18055550160", sid="CAlate"))
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        post_signed(client, call_form("+18055550160", sid="CAtoolate"))
    late = Call.objects.get(call_sid="CAlate")
    assert (late.attribution, late.lease, late.is_late) == (CallAttribution.LATE, previous, True)
    too_late = Call.objects.get(call_sid="CAtoolate")
    assert (too_late.attribution, too_late.lease) == (CallAttribution.NONE, None)


def test_a_call_to_the_overflow_number_is_flagged_with_no_visitor(client):
    pool = RingPoolFactory()
    overflow = PromoNumberFactory(pool=pool, role=NumberRole.OVERFLOW, number="+18055550170")
    LeaseFactory(number=PromoNumberFactory(pool=pool))
    post_signed(client, call_form(str(overflow.number)))
    call = Call.objects.get()
    assert (call.is_overflow, call.attribution, call.lease) == (True, CallAttribution.OVERFLOW, None)


def test_a_released_number_still_routes_to_its_last_destination(client, number):
    PromoNumber.objects.filter(pk=number.pk).update(state=NumberState.RELEASED, released_at=T0)
    response = post_signed(client, call_form("+18055550160"))
    assert response.status_code == 200
    assert f"<Dial>{number.pool.destination_number.number}</Dial>" in response.content.decode()


def test_the_signature_covers_the_public_url_behind_a_proxy(client, number, settings):
    settings.RINGPOOL_PUBLIC_BASE_URL = "https://calls.ringpool.example"
    form = call_form("+18055550160")
    assert post_signed(client, form).status_code == 403
    assert post_signed(client, form, url="https://calls.ringpool.example/webhooks/calls").status_code == 200


def test_each_account_signs_with_its_own_token(client, number):
    assert post_signed(client, call_form("+18055550160"), token="another-accounts-token").status_code == 403


@pytest.mark.parametrize(
    "body, content_type, code",
    [
        (b"--xyz\r\n", "multipart/form-data", "invalid_form"),  # no boundary
        (
            "&".join(f"f{i}=1" for i in range(1500)).encode(),
            "application/x-www-form-urlencoded",
            "invalid_form",
        ),
    ],
)
def test_a_body_the_webhook_cannot_read_is_a_json_400(client, number, body, content_type, code):
    response = client.generic("POST", "/webhooks/calls", body, content_type=content_type)
    assert (response.status_code, response.json()["error"]) == (400, code)
    assert not Call.objects.exists()


def test_other_methods_get_a_json_405(client):
    response = client.get("/webhooks/calls")
    assert (response.status_code, response.json()["error"], response["Allow"]) == (
        405,
        "method_not_allowed",
        "POST",
    )


def test_a_field_sent_twice_is_refused_before_anything_is_looked_up(client, number):
    """An attacker who places a second `To` before the signed one must not choose the number (and so
    the account whose token checks the signature): a repeated field is a 400, whatever its order."""
    other = PromoNumberFactory(number="+18055550161")
    form = call_form("+18055550160")
    signature = RequestValidator("test-auth-token").compute_signature(URL, form)
    body = "To=%2B18055550161&" + "&".join(f"{k}={v.replace('+', '%2B')}" for k, v in form.items())
    response = client.post(
        "/webhooks/calls",
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 400 and response.json()["error"] == "repeated_field"
    assert "To" in response.json()["detail"]
    assert not Call.objects.exists() and other.pk
