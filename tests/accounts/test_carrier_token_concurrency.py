"""Rotation under real concurrency (PostgreSQL, one connection per thread): the carrier's first calls signed
with the new token arrive together with calls it signed with the old one just before. No call is refused,
and the account ends with the new token in force."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import Client
from twilio.request_validator import RequestValidator

from accounts.models import Account
from accounts.services import account_carrier_token_replace
from tests.factories import AccountFactory, PromoNumberFactory, RingPoolFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
CALLERS = 12
ROUNDS = 5
URL = "http://testserver/webhooks/calls"


def signed_call(token: str, sid: str) -> int:
    form = {"CallSid": sid, "From": "+12125550111", "To": "+18055550160", "CallStatus": "ringing"}
    signature = RequestValidator(token).compute_signature(URL, form)
    return Client().post("/webhooks/calls", data=form, headers={"X-Twilio-Signature": signature}).status_code


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_simultaneous_first_calls_with_the_new_token_all_pass_and_promote_it_once(round_):
    account = AccountFactory(carrier_auth_token="old-token")
    PromoNumberFactory(pool=RingPoolFactory(account=account), number="+18055550160")
    account_carrier_token_replace(account=account, token="new-token", actor=None)
    barrier = threading.Barrier(CALLERS)

    def caller(i: int) -> int:
        try:
            barrier.wait()
            # Half the calls are still signed with the old token: the carrier switches mid-burst.
            return signed_call("new-token" if i % 2 else "old-token", f"CA{round_}-{i}")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(CALLERS) as pool:
        statuses = list(pool.map(caller, range(CALLERS)))
    # Old-token calls arriving after the first new-token call are in the overlap: every call passes.
    assert statuses == [200] * CALLERS
    stored = Account.objects.get(pk=account.pk)
    assert (stored.carrier_auth_token, stored.carrier_auth_token_next) == ("new-token", "")
