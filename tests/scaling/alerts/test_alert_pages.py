"""Open alerts where people look (issue 20): banners on the pools and Settings pages, the Alerts page
with each person's own choice of mail, and "needs attention" on the admin index — per account."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.choices import Role
from scaling.choices import AlertKind, AlertSeverity
from scaling.models import Alert
from tests import factories

pytestmark = pytest.mark.django_db


def alert(pool=None, account=None, *, kind=AlertKind.AT_CAP, resolved=False, **fields) -> Alert:
    now = timezone.now()
    account = account or (pool.account if pool else None)
    return Alert.objects.create(
        kind=kind,
        subject=f"pool:{pool.pk}" if pool else f"account:{account.pk if account else 'system'}",
        account=account,
        pool=pool,
        reason=fields.pop("reason", f"{pool.name if pool else 'It'} is at its maximum size of 3 numbers"),
        advice=fields.pop("advice", "Raise the maximum size: 1 more number costs about $1.50 a month"),
        first_seen_at=now - timedelta(hours=1),
        seen_at=now,
        opened_at=now - timedelta(hours=1),
        resolved_at=now if resolved else None,
        resolution="the pool is below its maximum size again" if resolved else "",
        **fields,
    )


def member(account, role=Role.SUPER_USER, **extra):
    user = factories.UserFactory(**extra)
    factories.MembershipFactory(user=user, account=account, role=role)
    client = Client()
    client.force_login(user)
    return user, client


def test_the_pools_and_settings_pages_show_the_accounts_open_alerts_with_what_to_do_and_no_other_accounts():
    pool = factories.RingPoolFactory(name="Spring pool")
    alert(pool)
    alert(pool, resolved=True, kind=AlertKind.NO_NUMBER)  # resolved: not a banner
    elsewhere = factories.RingPoolFactory(name="Globex pool")
    alert(elsewhere)
    _, client = member(pool.account, role=Role.MEMBER)

    for page in ("/pools/", "/settings/", "/settings/network/ringpool-auto-scaling/"):
        html = client.get(page).content.decode()
        assert html.count('class="alert-banner alert-problem"') == 1, page
        assert "Spring pool is at its maximum size of 3 numbers" in html
        assert "What to do: Raise the maximum size" in html
        assert "Globex pool" not in html


def test_a_suggestion_links_to_the_settings_where_it_is_acted_on():
    pool = factories.RingPoolFactory()
    alert(pool, kind=AlertKind.OVERFLOW_MANUAL, severity=AlertSeverity.SUGGESTION, reason="Overflowing")
    _, client = member(pool.account)
    html = client.get("/pools/").content.decode()
    assert 'class="alert-banner alert-suggestion" role="status"' in html
    assert 'href="/settings/network/ringpool-auto-scaling/">Change the auto-scaling scope' in html


def test_the_alerts_page_lists_open_and_resolved_and_each_person_turns_their_own_mail_off():
    pool = factories.RingPoolFactory()
    alert(pool)
    alert(pool, resolved=True, kind=AlertKind.NO_NUMBER)
    user, client = member(pool.account, role=Role.MEMBER)
    colleague, _ = member(pool.account)

    page = client.get("/alerts/")
    html = page.content.decode()
    assert "At its maximum size while overflowing" in html and "No number at the carrier" in html
    assert "The pool is below its maximum size again" in html
    assert 'name="alert_emails" checked' in html

    assert client.post("/alerts/", {}).status_code == 302  # the box unticked
    user.refresh_from_db()
    colleague.refresh_from_db()
    assert user.alert_emails is False and colleague.alert_emails is True
    assert 'name="alert_emails" checked' not in client.get("/alerts/").content.decode()
    client.post("/alerts/", {"alert_emails": "on"})
    user.refresh_from_db()
    assert user.alert_emails is True


def test_turning_mail_off_needs_the_csrf_token():
    pool = factories.RingPoolFactory()
    user = factories.UserFactory()
    factories.MembershipFactory(user=user, account=pool.account, role=Role.MEMBER)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/alerts/", {}).status_code == 403
    user.refresh_from_db()
    assert user.alert_emails is True


def test_the_alerts_page_needs_a_sign_in():
    response = Client().get("/alerts/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account-login"))


def test_the_admin_index_lists_what_needs_attention_across_accounts():
    first = factories.RingPoolFactory(name="Spring pool")
    second = factories.RingPoolFactory(name="Roof pool")
    alert(first)
    alert(second, kind=AlertKind.GROWTH_BEHIND, reason="Roof pool has been due to grow")
    alert(None, kind=AlertKind.BEAT_DOWN, reason="No Beat has sent the periodic tasks for over 120 s")
    alert(first, resolved=True, kind=AlertKind.NO_NUMBER, reason="resolved long ago")
    client = Client()
    client.force_login(factories.StaffFactory())

    html = client.get("/admin/").content.decode()
    assert "Needs attention (3 open alerts)" in html
    assert "Roof pool has been due to grow" in html and "the system" in html
    assert "resolved long ago" not in html

    listing = client.get("/admin/scaling/alert/")
    assert listing.status_code == 302 and listing["Location"].endswith("?state=open")
    rows = client.get("/admin/scaling/alert/?state=open&kind__exact=growth_behind").content.decode()
    assert "Roof pool has been due to grow" in rows and "Spring pool" not in rows
