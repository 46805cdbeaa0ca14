"""The prune preview in admin: account managers see what the month-end run would remove and why,
pin and unpin from there (staff only, CSRF), and the bill; the preview is what the run then removes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from ringpools.choices import NumberRole, NumberState
from ringpools.models import PromoNumber
from scaling.choices import EventKind
from scaling.models import ScalingEvent
from scaling.pruning.run import ringpools_prune
from scaling.supply.inventory import InventoryCarrier
from scaling.supply.outbox import carrier_orders_of, carrier_orders_run
from tests import factories

pytestmark = pytest.mark.django_db
LAST_DAY = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)


@pytest.fixture
def pool():
    pool = factories.RingPoolFactory(
        account=factories.AccountFactory(name="Acme", timezone="America/Los_Angeles")
    )
    for position in range(10):
        idle = position < 4
        factories.PromoNumberFactory(
            pool=pool,
            number=f"+1805555{1100 + position}",
            acquired_at=LAST_DAY - timedelta(days=90),
            last_presented_at=LAST_DAY - timedelta(days=30 - position if idle else 1),
        )
    factories.PromoNumberFactory(
        pool=pool, number="+18055551199", role=NumberRole.OVERFLOW, acquired_at=LAST_DAY - timedelta(days=90)
    )
    return pool


@pytest.fixture
def staff(client):
    user = factories.StaffFactory(username="sam")
    client.force_login(user)
    return user


def preview(client, pool) -> str:
    with time_machine.travel(LAST_DAY, tick=False):
        response = client.get(reverse("admin:ringpools_ringpool_prune", args=[pool.pk]))
    assert response.status_code == 200
    return response.content.decode()


def goes(html: str) -> list[str]:
    rows = [row for row in html.split("<tr") if 'class="prune-goes"' in row]
    return [row.split("<td>")[1].split("</td>")[0] for row in rows]


def test_the_pool_preview_shows_what_goes_and_why_and_the_run_removes_exactly_that(client, staff, pool):
    html = preview(client, pool)
    assert goes(html) == ["(805) 555-1100", "(805) 555-1101"]
    assert "unused: presented 30.0 days ago, never called" in html
    assert "held back by the 20% cap: 2 of 10 may go" in html
    assert "presented 1.0 days ago (within 5 days)" in html and "the pool&#x27;s overflow number" in html
    assert "Forecast for next month" in html

    carrier = InventoryCarrier()
    list(
        ringpools_prune(
            now=LAST_DAY,
            release=lambda ids: carrier_orders_run(orders=carrier_orders_of(ids), carrier=carrier),
        )
    )
    released = PromoNumber.objects.filter(state=NumberState.RELEASED)
    assert sorted(n.number.as_national for n in released) == ["(805) 555-1100", "(805) 555-1101"]
    assert "This month's prune was decided" in preview(client, pool)


def test_the_account_preview_lists_every_pool_and_the_bill(client, staff, pool):
    other = factories.RingPoolFactory(account=pool.account, name="Quiet pool", auto_scaling_enabled=False)
    with time_machine.travel(LAST_DAY, tick=False):
        response = client.get(reverse("admin:ringpools_ringpool_prune_account", args=[pool.account_id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert pool.name in html and other.name in html
    assert "Auto-scaling does not apply: turned off for this pool" in html
    # 11 numbers held at 1.00 each; 2 planned to go: 9 next month.
    assert "<td>11</td><td>11.00 / month</td>" in html and "<td>9</td><td>9.00 / month</td>" in html


def test_pinning_from_the_preview_keeps_the_number_and_is_audited(client, staff, pool):
    first = PromoNumber.objects.get(number="+18055551100")
    url = reverse("admin:ringpools_ringpool_pin", args=[first.pk])
    response = client.post(url, {"reason": "on the printed flyer", "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"

    assert goes(preview(client, pool)) == ["(805) 555-1101", "(805) 555-1102"]
    event = ScalingEvent.objects.get(kind=EventKind.NUMBER_PINNED)
    assert (event.number, event.actor, event.reason) == (first, staff, "pinned: on the printed flyer")

    client.post(reverse("admin:ringpools_ringpool_unpin", args=[first.pk]), {"reason": "flyer is gone"})
    assert goes(preview(client, pool)) == ["(805) 555-1100", "(805) 555-1101"]


def test_a_pin_needs_a_reason(client, staff, pool):
    first = PromoNumber.objects.get(number="+18055551100")
    client.post(reverse("admin:ringpools_ringpool_pin", args=[first.pk]), {"reason": " "})
    assert PromoNumber.objects.get(pk=first.pk).pinned_at is None


def test_pinning_needs_a_post_with_a_csrf_token(staff, pool):
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(staff)
    first = PromoNumber.objects.get(number="+18055551100")
    url = reverse("admin:ringpools_ringpool_pin", args=[first.pk])
    assert checked.post(url, {"reason": "no token"}).status_code == 403
    assert checked.get(url).status_code == 405
    assert PromoNumber.objects.get(pk=first.pk).pinned_at is None


def test_outsiders_and_customers_cannot_see_or_pin(client, pool):
    first = PromoNumber.objects.get(number="+18055551100")
    preview_url = reverse("admin:ringpools_ringpool_prune", args=[pool.pk])
    pin_url = reverse("admin:ringpools_ringpool_pin", args=[first.pk])
    assert client.get(preview_url).status_code == 302  # to the login page
    customer = factories.MembershipFactory(account=pool.account).user
    client.force_login(customer)
    assert client.get(preview_url).status_code == 302
    assert client.post(pin_url, {"reason": "mine"}).status_code == 302
    assert PromoNumber.objects.get(pk=first.pk).pinned_at is None


def test_staff_without_the_permission_to_change_numbers_see_but_cannot_pin(client, pool):
    viewer = factories.UserFactory(username="viewer", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_ringpool"))
    client.force_login(viewer)
    assert "Pin</button>" not in preview(client, pool)
    first = PromoNumber.objects.get(number="+18055551100")
    assert (
        client.post(reverse("admin:ringpools_ringpool_pin", args=[first.pk]), {"reason": "x"}).status_code
        == 403
    )


def test_the_pool_page_links_to_its_preview(client, staff, pool):
    html = client.get(reverse("admin:ringpools_ringpool_change", args=[pool.pk])).content.decode()
    assert reverse("admin:ringpools_ringpool_prune", args=[pool.pk]) in html


def test_the_preview_tells_the_time_in_the_accounts_zone(client, staff, pool):
    """Issue 21: 20:00 UTC on Nov 30 is 12:00 in Los Angeles; on the month's last evening, 05:30 UTC on
    Dec 1 is still Nov 30 there."""
    assert "Monday 30 November 2026, 12:00 in America/Los_Angeles" in preview(client, pool)
    with time_machine.travel(datetime(2026, 12, 1, 5, 30, tzinfo=UTC), tick=False):
        html = client.get(reverse("admin:ringpools_ringpool_prune", args=[pool.pk])).content.decode()
    assert "Monday 30 November 2026, 21:30 in America/Los_Angeles" in html


@time_machine.travel(LAST_DAY, tick=False)
def test_the_preview_shows_each_numbers_renewal_and_what_the_adaptive_policy_would_do(client, staff, pool):
    url = reverse("admin:ringpools_ringpool_prune", args=[pool.pk])
    page = client.get(url).content.decode()
    assert "At each number's renewal (adaptive policy)" in page
    assert "This account runs the seed's rule" in page
    # Bought 90 days ago: each renews at 120 days; the four idle ones would go (the busiest hour held
    # none of them), the six presented yesterday stay.
    renews = (LAST_DAY - timedelta(days=90) + timedelta(days=120)).astimezone(pool.account.timezone)
    assert page.count(f"{renews:%Y-%m-%d %H:%M}") == 10
    assert page.count('class="renewal-goes"') == 4 and page.count('class="renewal-stays"') == 6
    assert page.count("Presented 1.0 days ago") == 6  # exactly a day ago is within the day: stays
    factories.AutoScalingSettingsFactory(account=pool.account, policy="adaptive")
    assert "This account runs the adaptive policy" in client.get(url).content.decode()
