"""The carrier auth token signs call webhooks: whoever reads it can forge calls. It is a secret: encrypted at
rest, write-only in admin, never in a page or a log, and replaced without refusing a single call."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from twilio.request_validator import RequestValidator

from accounts.models import Account
from accounts.roles import ACCOUNT_MANAGERS
from ringpools.models import Call
from tests import factories
from tests.test_setup import PRODUCTION, manage, run

pytestmark = pytest.mark.django_db
TOKEN = "tok-5ecret-4c1d-b0a7-never-shown"
NEW_TOKEN = "tok-new-9f8e-rotated-never-shown"
WEBHOOK = "http://testserver/webhooks/calls"


@pytest.fixture
def account():
    return factories.AccountFactory(name="Acme", carrier_auth_token=TOKEN, carrier_account_sid="AC123")


@pytest.fixture
def number(account):
    pool = factories.RingPoolFactory(account=account)
    return factories.PromoNumberFactory(pool=pool, number="+18055550160")


@pytest.fixture
def superuser():
    return factories.StaffFactory(username="root")


@pytest.fixture
def manager():
    user = factories.UserFactory(username="manny", is_staff=True)
    user.groups.add(Group.objects.get(name=ACCOUNT_MANAGERS.group))
    return user


def call(client, token: str, sid: str) -> int:
    form = {"CallSid": sid, "From": "+12125550111", "To": "+18055550160", "CallStatus": "ringing"}
    signature = RequestValidator(token).compute_signature(WEBHOOK, form)
    return client.post("/webhooks/calls", data=form, headers={"X-Twilio-Signature": signature}).status_code


def account_form(account: Account, **extra: str) -> dict[str, str]:
    return {
        "name": account.name,
        "slug": account.slug,
        "timezone": "America/Los_Angeles",
        "carrier_account_sid": account.carrier_account_sid,
        "auto_scaling_available": "on",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        **extra,
    }


def test_the_token_is_stored_encrypted_and_still_signs_webhooks(client, account, number):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_account WHERE id = %s", [account.pk])
        row = cursor.fetchone()
    assert TOKEN not in " ".join(str(value) for value in row)
    assert Account.objects.get(pk=account.pk).carrier_auth_token == TOKEN
    assert call(client, TOKEN, "CA1") == 200
    assert call(client, "a-forged-token", "CA2") == 403
    assert Call.objects.count() == 1


def admin_urls(account: Account, number) -> list[str]:
    """Every admin page a person could open about the account and its numbers."""
    from django.contrib import admin

    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        opts = model._meta
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        obj = model._default_manager.first()
        if obj is not None:
            for view in ("change", "history", "delete"):
                urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk]))
    urls += [
        reverse("admin:accounts_account_changelist") + "?q=Acme",
        reverse("admin:ringpools_ringpool_changelist") + "export.csv",
        reverse("admin:ringpools_promonumber_changelist") + "export.csv",
        reverse("admin:app_list", args=["accounts"]),
    ]
    return urls


@pytest.mark.parametrize("who", ["superuser", "manager"])
def test_the_token_appears_in_no_admin_page_for_anyone(client, account, number, who, request):
    factories.LeaseFactory(number=number)
    factories.CallFactory(number=number)
    factories.ScalingEventFactory(pool=number.pool)
    client.force_login(request.getfixturevalue(who))
    stored = Account.objects.get(pk=account.pk).carrier_auth_token_encrypted
    opened = 0
    for url in admin_urls(account, number):
        response = client.get(url)
        body = (b"".join(response.streaming_content) if response.streaming else response.content).decode(
            errors="replace"
        )
        assert TOKEN not in body, url
        assert stored not in body, url  # not even the ciphertext
        opened += response.status_code == 200
    assert opened > 30


def test_a_view_only_account_manager_cannot_replace_or_read_the_token(client, account, manager):
    client.force_login(manager)
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert "new_carrier_auth_token" not in page and "carrier auth token" in page.lower()
    response = client.post(
        reverse("admin:accounts_account_change", args=[account.pk]),
        account_form(account, new_carrier_auth_token="mine-now", token_in_force_at_once="on"),
    )
    assert response.status_code == 403
    assert Account.objects.get(pk=account.pk).carrier_auth_token == TOKEN


def test_staff_with_change_but_not_the_credentials_permission_cannot_slip_a_token_in(client, account):
    from django.contrib.auth.models import Permission

    clerk = factories.UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_account", "change_account"]))
    client.force_login(clerk)
    response = client.post(
        reverse("admin:accounts_account_change", args=[account.pk]),
        account_form(
            account, name="Acme Inc", new_carrier_auth_token="mine-now", token_in_force_at_once="on"
        ),
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.name == "Acme Inc" and account.carrier_auth_token == TOKEN


def test_rotation_keeps_the_old_token_until_the_carrier_signs_with_the_new_one(
    client, account, number, superuser, caplog
):
    caplog.set_level(logging.DEBUG)
    client.force_login(superuser)
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            reverse("admin:accounts_account_change", args=[account.pk]),
            account_form(account, new_carrier_auth_token=NEW_TOKEN),
        )
    assert response.status_code == 302
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert "a replacement is pending" in page and NEW_TOKEN not in page
    history = client.get(reverse("admin:accounts_account_history", args=[account.pk])).content.decode()
    assert "Replace carrier auth token" in history and NEW_TOKEN not in history  # the change, not the value
    # Until the carrier switches, calls signed with the old token keep working.
    assert call(client, TOKEN, "CA1") == 200
    # The first call signed with the new token confirms it. Calls the carrier signed with the old token
    # just before switching still pass for ten minutes; then the old token is refused.
    switched = timezone.now()
    with time_machine.travel(switched, tick=False):
        assert call(client, NEW_TOKEN, "CA2") == 200
    with time_machine.travel(switched + timedelta(minutes=9, seconds=59), tick=False):
        assert call(client, TOKEN, "CA3") == 200
    with time_machine.travel(switched + timedelta(minutes=10, seconds=1), tick=False):
        assert call(client, TOKEN, "CA4") == 403
        assert call(client, NEW_TOKEN, "CA5") == 200
    assert Account.objects.get(pk=account.pk).carrier_auth_token == NEW_TOKEN
    assert Account.objects.get(pk=account.pk).carrier_auth_token_next == ""
    # Neither token reached a log line or the SQL sent to the database.
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    for secret in (TOKEN, NEW_TOKEN):
        assert secret not in caplog.text and secret not in sql
    assert "carrier auth token replaced by root" in caplog.text


def test_a_token_can_be_put_in_force_at_once_or_a_pending_one_discarded(client, account, number, superuser):
    client.force_login(superuser)
    change = reverse("admin:accounts_account_change", args=[account.pk])
    client.post(change, account_form(account, new_carrier_auth_token="typo-token"))
    client.post(change, account_form(account, discard_pending_token="on"))
    assert call(client, "typo-token", "CA1") == 403
    client.post(change, account_form(account, new_carrier_auth_token=NEW_TOKEN, token_in_force_at_once="on"))
    assert call(client, TOKEN, "CA2") == 403
    assert call(client, NEW_TOKEN, "CA3") == 200


def test_a_token_posted_to_admin_is_hidden_from_error_reports(rf, superuser, account):
    from django.contrib import admin as django_admin
    from django.views.debug import SafeExceptionReporterFilter

    request = rf.post("/", {"new_carrier_auth_token": NEW_TOKEN, "name": "x"})
    request.user = superuser
    # The view fails on this bare request (no session); what matters is what an error report would show.
    with contextlib.suppress(Exception):
        django_admin.site._registry[Account].changeform_view(request, object_id=str(account.pk))
    cleaned = SafeExceptionReporterFilter().get_post_parameters(request)
    assert cleaned["new_carrier_auth_token"] != NEW_TOKEN and cleaned["name"] == "x"


def test_production_refuses_to_start_without_encryption_keys(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k not in {"RINGPOOL_ENCRYPTION_KEYS", "CELERY_BROKER_URL"}}
    env.update(RINGPOOL_DATA_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    result = run([sys.executable, "-c", "import config.wsgi"], **env)
    assert result.returncode != 0 and "RINGPOOL_ENCRYPTION_KEYS is not set" in result.stderr
    result = manage("check", "--deploy", **env)
    assert result.returncode != 0 and "RINGPOOL_ENCRYPTION_KEYS" in result.stdout + result.stderr


def test_a_wrong_encryption_key_refuses_webhooks_with_503_and_says_why_without_the_token(
    client, number, settings, caplog
):
    from cryptography.fernet import Fernet

    settings.RINGPOOL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert call(client, TOKEN, "CA1") == 503
    assert "RINGPOOL_ENCRYPTION_KEYS" in caplog.text and TOKEN not in caplog.text
    assert not Call.objects.exists()


def test_the_encryption_key_rotates_old_key_second(settings, account):
    from cryptography.fernet import Fernet

    from accounts import secrets

    old = list(settings.RINGPOOL_ENCRYPTION_KEYS)
    settings.RINGPOOL_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *old]
    stored = Account.objects.get(pk=account.pk)
    assert stored.carrier_auth_token == TOKEN  # still opened by the old key
    call_command("rotate_encryption_key", stdout=io.StringIO())
    settings.RINGPOOL_ENCRYPTION_KEYS = settings.RINGPOOL_ENCRYPTION_KEYS[:1]  # the old key is gone
    assert Account.objects.get(pk=account.pk).carrier_auth_token == TOKEN
    assert secrets.decrypt(Account.objects.get(pk=account.pk).carrier_auth_token_encrypted) == TOKEN
