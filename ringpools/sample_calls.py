"""Test calls for staff and demos: a call the carrier would send, signed with the account's token and posted
to the real webhook view (in process, or over HTTP to a running server), so recording, attribution and
routing run exactly as for a real call."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.test import Client
from django.urls import reverse
from twilio.request_validator import RequestValidator

from ringpools.models import Call, PromoNumber

SAMPLE_CALLER = "+12025550143"  # a fictional 555-01xx number


@dataclass(frozen=True)
class SampleCall:
    call_sid: str
    status_code: int
    answer: str
    call: Call | None


def sample_call_place(
    *, number: PromoNumber, from_number: str = SAMPLE_CALLER, url: str | None = None
) -> SampleCall:
    """Place a test call to `number`. `url`: the webhook of a running server; None: this process."""
    path = reverse("webhook-calls")
    form = {
        "CallSid": "CA" + uuid.uuid4().hex,
        "AccountSid": number.account.carrier_account_sid or "ACtest",
        "From": from_number,
        "To": str(number.number),
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    base = settings.RINGPOOL_PUBLIC_BASE_URL.rstrip("/")
    if url is None:
        host = _allowed_host()
        signed_url = f"{base}{path}" if base else f"https://{host}{path}"
        signature = _signature(number, signed_url, form)
        response = Client(HTTP_HOST=host).post(
            path, data=form, secure=True, headers={"X-Twilio-Signature": signature}
        )
        status, answer = response.status_code, response.content.decode()
    else:
        signed_url = f"{base}{path}" if base else url
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(form).encode(),
            headers={"X-Twilio-Signature": _signature(number, signed_url, form)},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                status, answer = reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            status, answer = error.code, error.read().decode()
    call = Call.objects.filter(call_sid=form["CallSid"]).select_related("lease").first()
    return SampleCall(call_sid=form["CallSid"], status_code=status, answer=answer, call=call)


def _signature(number: PromoNumber, signed_url: str, form: dict[str, str]) -> str:
    return RequestValidator(number.account.carrier_auth_token).compute_signature(signed_url, form)


def _allowed_host() -> str:
    for host in settings.ALLOWED_HOSTS:
        if host and host != "*" and not host.startswith("."):
            return host
    return "localhost"
