"""Concurrent saves of the settings page and concurrent password guessing, each client on its own
PostgreSQL connection (threads), repeated to catch a rare interleaving."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from axes.models import AccessAttempt
from django.db import connections
from django.test import Client

from accounts.choices import Role
from scaling.choices import Scope
from scaling.models import AutoScalingSettings
from scaling.services import auto_scaling_settings_for
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
PAGE = "/settings/network/ringpool-auto-scaling/"
ROUNDS = 15


@pytest.fixture(autouse=True)
def _quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def in_parallel(*calls):
    """Run the calls at the same moment, each in its own thread and database connection."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        try:
            barrier.wait()
            return call()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_of_two_super_users_saving_forms_drawn_at_once_exactly_one_wins_each_time():
    account = factories.AccountFactory(name="Acme")
    spring = factories.CampaignFactory(account=account, name="Spring Sale")
    factories.CampaignFactory(account=account, name="Roofing Leads")
    auto_scaling_settings_for(account)
    people = []
    for name in ("alice", "bob"):
        user = factories.UserFactory(username=name, first_name=name.capitalize())
        factories.MembershipFactory(user=user, account=account, role=Role.SUPER_USER)
        client = Client()
        client.force_login(user)
        people.append(client)
    alice, bob = people
    campaigns = list(account.campaigns.values_list("pk", flat=True))
    for round_ in range(ROUNDS):
        settings = AutoScalingSettings.objects.get(account=account)
        seen = settings.updated_at.isoformat()
        # Each form changes something whatever the state: Alice flips the overflow default and picks
        # one campaign, Bob flips the auto-scaling default and keeps every campaign.
        alices = {
            "account": account.pk,
            "seen_updated_at": seen,
            "scope": Scope.SELECTED_CAMPAIGNS,
            "campaigns": [spring.pk],
        }
        if not settings.include_overflow_number:
            alices["include_overflow_number"] = "on"
        if settings.enable_for_new_pools:
            alices["enable_for_new_pools"] = "on"
        bobs = {
            "account": account.pk,
            "seen_updated_at": seen,
            "scope": Scope.ALL_CAMPAIGNS,
            "campaigns": campaigns,
        }
        if not settings.enable_for_new_pools:
            bobs["enable_for_new_pools"] = "on"
        if settings.include_overflow_number:
            bobs["include_overflow_number"] = "on"
        history_before = settings.history.count()
        answers = in_parallel(partial(alice.post, PAGE, alices), partial(bob.post, PAGE, bobs))
        codes = sorted(a.status_code for a in answers)
        assert codes == [302, 409], (round_, codes)
        after = AutoScalingSettings.objects.get(account=account)
        assert after.history.count() == history_before + 1
        if answers[0].status_code == 302:  # Alice's save, and nothing of Bob's
            assert after.scope == Scope.SELECTED_CAMPAIGNS
            assert after.include_overflow_number != settings.include_overflow_number
            assert after.enable_for_new_pools == settings.enable_for_new_pools
        else:
            assert after.scope == Scope.ALL_CAMPAIGNS
            assert after.enable_for_new_pools != settings.enable_for_new_pools
            assert after.include_overflow_number == settings.include_overflow_number


def test_a_burst_of_concurrent_guesses_locks_sign_in_and_loses_no_count(settings):
    user = factories.UserFactory(username="alice")
    factories.MembershipFactory(user=user, role=Role.SUPER_USER)
    guesses = 12

    def guess(attempt: int):
        return lambda: (
            Client()
            .post("/account/sign-in/", {"username": "alice", "password": f"guess-{attempt}"})
            .status_code
        )

    for _ in range(3):
        AccessAttempt.objects.all().delete()
        codes = in_parallel(*(guess(i) for i in range(guesses)))
        assert set(codes) <= {200, 429}
        attempt = AccessAttempt.objects.get(username="alice")
        # Every guess the server judged was counted (row lock, not read-then-write).
        assert attempt.failures_since_start >= codes.count(200) + (1 if 429 in codes else 0)
        assert attempt.failures_since_start >= settings.AXES_FAILURE_LIMIT
        ok = Client().post(
            "/account/sign-in/", {"username": "alice", "password": "correct horse battery staple"}
        )
        assert ok.status_code == 429
