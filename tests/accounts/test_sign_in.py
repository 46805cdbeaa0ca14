"""Signing in and out, password reset by email, and sign-in throttling against password guessing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.choices import Role
from tests import factories

pytestmark = pytest.mark.django_db
SIGN_IN = "/account/sign-in/"
PASSWORD = "correct horse battery staple"  # the factories' password


@pytest.fixture(autouse=True)
def _quick_password_hashing(settings):
    # Hashing is deliberately slow; these tests sign in dozens of times and test throttling, not it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice():
    user = factories.UserFactory(username="alice", first_name="Alice", email="alice@example.com")
    factories.MembershipFactory(
        user=user, account=factories.AccountFactory(name="Acme"), role=Role.SUPER_USER
    )
    return user


def sign_in(client: Client, username: str, password: str, **extra):
    return client.post(SIGN_IN, {"username": username, "password": password}, **extra)


def test_a_super_user_who_is_not_staff_signs_in_and_lands_on_settings(alice):
    client = Client()
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/settings/"
    page = client.get("/settings/")
    assert page.status_code == 200 and "Acme" in page.content.decode()


def test_sign_in_returns_to_the_page_asked_for(alice):
    client = Client()
    asked = client.get("/settings/network/ringpool-auto-scaling/")
    assert asked["Location"] == f"{SIGN_IN}?next=/settings/network/ringpool-auto-scaling/"
    response = client.post(
        asked["Location"],
        {"username": "alice", "password": PASSWORD, "next": "/settings/network/ringpool-auto-scaling/"},
    )
    assert response["Location"] == "/settings/network/ringpool-auto-scaling/"


def test_a_wrong_password_is_refused_with_a_message(alice):
    response = sign_in(Client(), "alice", "wrong")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_signing_out_takes_a_post_and_ends_the_session(alice):
    client = Client()
    sign_in(client, "alice", PASSWORD)
    assert client.get(reverse("account-logout")).status_code == 405
    assert client.post(reverse("account-logout"))["Location"] == SIGN_IN
    assert client.get("/settings/").status_code == 302


def test_sign_in_is_locked_after_five_wrong_passwords_even_for_the_right_one(alice):
    guesser = Client()
    for attempt in range(4):
        assert sign_in(guesser, "alice", f"guess-{attempt}").status_code == 200
    assert sign_in(guesser, "alice", "guess-4").status_code == 429  # the fifth wrong one locks
    locked = sign_in(guesser, "alice", PASSWORD)
    assert locked.status_code == 429
    assert "Too many attempts" in locked.content.decode()
    assert "_auth_user_id" not in guesser.session
    # The count is in the database, not in this client's session or this process's memory: a fresh
    # client (another browser, another web process) from the same address is locked out too.
    assert sign_in(Client(), "alice", PASSWORD).status_code == 429
    assert AccessAttempt.objects.get(username="alice").failures_since_start >= 5


def test_the_lockout_ends_fifteen_minutes_after_the_last_attempt(alice):
    start = timezone.now()
    for attempt in range(5):
        sign_in(Client(), "alice", f"guess-{attempt}")
    with time_machine.travel(start + timedelta(minutes=14), tick=False):
        assert sign_in(Client(), "alice", PASSWORD).status_code == 429
    # Trying during the lockout starts the fifteen minutes again.
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        assert sign_in(Client(), "alice", PASSWORD).status_code == 429
    with time_machine.travel(start + timedelta(minutes=32), tick=False):
        assert sign_in(Client(), "alice", PASSWORD).status_code == 302


def test_a_guesser_from_another_address_does_not_lock_the_person_out(alice):
    for attempt in range(5):
        sign_in(Client(), "alice", f"guess-{attempt}", REMOTE_ADDR="203.0.113.9")
    assert sign_in(Client(), "alice", "x", REMOTE_ADDR="203.0.113.9").status_code == 429
    assert sign_in(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 302


def test_behind_the_load_balancer_a_spoofed_forwarded_address_buys_no_fresh_budget(alice, settings):
    settings.RINGPOOL_TRUSTED_PROXY_HOPS = 1
    balancer = "10.0.0.2"
    for attempt in range(5):
        sign_in(
            Client(),
            "alice",
            f"guess-{attempt}",
            REMOTE_ADDR=balancer,
            HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}, 203.0.113.9",
        )
    # The left-hand entries are the client's own words; the balancer's entry is what counts.
    spoofed = sign_in(
        Client(), "alice", PASSWORD, REMOTE_ADDR=balancer, HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.9"
    )
    assert spoofed.status_code == 429
    honest = sign_in(Client(), "alice", PASSWORD, REMOTE_ADDR=balancer, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert honest.status_code == 302


def test_the_sign_in_form_is_refused_without_its_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_a_password_is_reset_through_the_emailed_link(alice):
    client = Client()
    response = client.post(reverse("password_reset"), {"email": "alice@example.com"})
    assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
    link = re.search(r"http://testserver(/account/password-reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    new_password = "a brand new passphrase 42"
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password}
    )
    assert done["Location"] == reverse("password_reset_complete")
    assert sign_in(Client(), "alice", PASSWORD).status_code == 200  # the old one no longer works
    assert sign_in(Client(), "alice", new_password).status_code == 302
    # A used link does not work twice.
    assert "This link no longer works" in Client().get(link, follow=True).content.decode()


def test_a_reset_for_an_unknown_address_sends_nothing_and_says_the_same(alice):
    response = Client().post(reverse("password_reset"), {"email": "nobody@example.com"}, follow=True)
    assert "If a login uses that address" in response.content.decode()
    assert mail.outbox == []


def test_every_other_form_of_the_customer_area_is_refused_without_its_csrf_token(alice):
    globex = factories.AccountFactory(name="Globex")
    factories.MembershipFactory(user=alice, account=globex, role=Role.MEMBER)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/settings/")
    chosen = client.session["ringpool_account_id"]
    other = globex.pk if chosen != globex.pk else alice.memberships.exclude(account=globex).get().account_id

    assert client.post(reverse("account-switch"), {"account": other}).status_code == 403
    assert client.session["ringpool_account_id"] == chosen
    assert client.post(reverse("password_reset"), {"email": "alice@example.com"}).status_code == 403
    assert mail.outbox == []
    assert client.post(reverse("account-logout")).status_code == 403
    assert client.get("/settings/").status_code == 200  # still signed in


def test_the_test_clients_login_still_works_next_to_the_throttle(alice):
    # Sign-ins without a request (no address to throttle) pass to the password check as before.
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    assert client.get("/settings/").status_code == 200
    assert not Client().login(username="alice", password="wrong")


def test_the_deploy_check_warns_when_password_reset_mail_goes_nowhere(settings):
    from django.core import checks

    settings.DEBUG = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
    found = [m.id for m in checks.run_checks(include_deployment_checks=True)]
    assert "accounts.W001" in found
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert "accounts.W001" not in [m.id for m in checks.run_checks(include_deployment_checks=True)]


@pytest.mark.parametrize("forwarded", ["unknown", "not-an-ip", "999.1.1.1", "a" * 300, "1.2.3.4%eth0"])
def test_a_proxy_that_reports_no_address_gets_a_sign_in_page_not_a_500(alice, settings, forwarded):
    """Proxies write `unknown` when they do not know the client: such sign-ins still answer, and are
    still throttled (they count against the proxy's own address)."""
    settings.RINGPOOL_TRUSTED_PROXY_HOPS = 1
    staff = factories.StaffFactory(username="root")
    headers = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": forwarded}
    admin = Client().post("/admin/login/", {"username": staff.username, "password": "wrong"}, **headers)
    assert admin.status_code == 200 and "Please enter the correct" in admin.content.decode()
    for attempt in range(4):
        assert sign_in(Client(), "alice", f"guess-{attempt}", **headers).status_code == 200
    assert sign_in(Client(), "alice", "guess-4", **headers).status_code == 429  # the fifth locks
    assert sign_in(Client(), "alice", PASSWORD, **headers).status_code == 429


def test_guesses_from_one_ipv6_block_count_together(alice, settings):
    """30 addresses of one /64 are one subscriber: five wrong passwords from any of them lock it."""
    settings.RINGPOOL_TRUSTED_PROXY_HOPS = 1
    for n in range(5):
        sign_in(
            Client(),
            "alice",
            f"guess-{n}",
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"2001:db8:7:7::{n:x}",
        )
    again = sign_in(
        Client(), "alice", PASSWORD, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="2001:db8:7:7:ab::99"
    )
    assert again.status_code == 429
    elsewhere = sign_in(
        Client(), "alice", PASSWORD, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="2001:db8:7:8::1"
    )
    assert elsewhere.status_code == 302  # the next /64 is someone else
