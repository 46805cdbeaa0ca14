"""Times in the account's zone (named), and calls with their attribution, test calls included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from ringpools.choices import CallAttribution
from ringpools.models import Call, PromoNumber
from tests import factories

pytestmark = pytest.mark.django_db
# 05:30 UTC on the 29th is still the evening of the 28th in Los Angeles.
NOW = datetime(2026, 11, 29, 5, 30, tzinfo=UTC)


@pytest.fixture
def staff(client):
    user = factories.StaffFactory(username="sam")
    client.force_login(user)
    return user


@pytest.fixture
def held_number():
    """A number held by a visitor who came from a newsletter link."""
    pool = factories.RingPoolFactory(name="Spring Sale")
    number = factories.PromoNumberFactory(pool=pool, number="+18055550160")
    lease = factories.LeaseFactory(
        number=number,
        visitor_id="visitor-alice-01",
        page_url="https://www.example.com/spring?utm_source=newsletter",
        params={"utm_source": "newsletter", "utm_campaign": "spring"},
        started_at=timezone.now() - timedelta(minutes=5),
    )
    PromoNumber.objects.filter(pk=number.pk).update(busy_until=lease.expires_at)
    return lease


def test_lists_and_pages_show_times_in_the_accounts_zone_named(client, staff, held_number):
    call = factories.CallFactory(number=held_number.number, received_at=NOW, lease=held_number)
    listing = client.get(reverse("admin:ringpools_call_changelist")).content.decode()
    assert "2026-11-28 21:30 PST" in listing
    assert 'title="2026-11-28 21:30 PST America/Los_Angeles · 2026-11-29 05:30 UTC"' in listing
    page = client.get(reverse("admin:ringpools_call_change", args=[call.pk])).content.decode()
    assert "Times on this page are in America/Los_Angeles" in page
    assert "2026-11-28 21:30 PST" in page and "2026-11-29 05:30" not in page.replace("05:30 UTC", "")
    factories.LeaseFactory(number=held_number.number, started_at=NOW - timedelta(minutes=5))
    leases = client.get(reverse("admin:ringpools_lease_changelist")).content.decode()
    assert "2026-11-28 21:25 PST" in leases and "2026-11-28 21:55 PST" in leases  # started, expires
    # In summer the same zone is named PDT.
    factories.ScalingEventFactory(pool=held_number.pool, created_at=datetime(2026, 7, 4, 3, 0, tzinfo=UTC))
    events = client.get(reverse("admin:scaling_scalingevent_changelist")).content.decode()
    assert "2026-07-03 20:00 PDT" in events


def test_rows_of_no_account_are_shown_in_utc_with_the_zone_named(client, staff):
    factories.InventoryNumberFactory(sold_at=NOW)  # stock: sold to no account
    listing = client.get(reverse("admin:scaling_inventorynumber_changelist")).content.decode()
    assert "2026-11-29 05:30 UTC" in listing


def test_a_call_shows_its_visitor_landing_page_parameters_lease_and_routing(client, staff, held_number):
    late = factories.CallFactory(
        number=held_number.number,
        lease=held_number,
        attribution=CallAttribution.LATE,
        received_at=NOW,
        forwarded_to="+18055550100",
    )
    page = client.get(reverse("admin:ringpools_call_change", args=[late.pk])).content.decode()
    assert "visitor-alice-01" in page
    assert "https://www.example.com/spring?utm_source=newsletter" in page
    assert "<code>utm_campaign</code> = spring" in page and "<code>utm_source</code> = newsletter" in page
    assert "Previous holder" in page and 'alt="True"' in page  # late: yes
    assert reverse("admin:ringpools_lease_change", args=[held_number.pk]) in page
    assert "(805) 555-0100" in page  # forwarded to
    listing = client.get(reverse("admin:ringpools_call_changelist")).content.decode()
    assert "visitor-alice-01" in listing and "/spring?utm_source" in listing and "Previous holder" in listing


def test_calls_are_found_by_the_visitor_or_by_a_number_however_typed(client, staff, held_number):
    factories.CallFactory(number=held_number.number, lease=held_number)
    factories.CallFactory(number=factories.PromoNumberFactory(number="+14155550177"))
    for typed in ("visitor-alice-01", "(805) 555-0160", "805.555.0160"):
        page = client.get(reverse("admin:ringpools_call_changelist"), {"q": typed}).content.decode()
        assert "(805) 555-0160" in page and "(415) 555-0177" not in page, typed


def test_the_test_call_command_is_attributed_to_the_visitor_holding_the_number(held_number):
    out = StringIO()
    call_command("test_call", "(805) 555-0160", stdout=out)
    call = Call.objects.get()
    assert (call.attribution, call.lease, call.number) == (
        CallAttribution.LEASE,
        held_number,
        held_number.number,
    )
    assert call.forwarded_to == str(held_number.pool.destination_number.number)
    assert PromoNumber.objects.get(pk=held_number.number_id).last_called_at is not None
    printed = out.getvalue()
    assert (
        "Visitor holding the number" in printed and "visitor-alice-01" in printed and "newsletter" in printed
    )


@pytest.mark.django_db(transaction=True)
def test_the_test_call_reaches_a_running_server_signed_and_is_attributed(live_server, held_number):
    out = StringIO()
    call_command("test_call", "805-555-0160", "--url", f"{live_server.url}/webhooks/calls", stdout=out)
    call = Call.objects.get()
    assert call.lease == held_number and call.attribution == CallAttribution.LEASE
    assert "Visitor holding the number" in out.getvalue()


def test_staff_place_a_test_call_from_the_number_list(client, staff, held_number):
    response = client.post(
        reverse("admin:ringpools_promonumber_changelist"),
        {"action": "place_test_call", "_selected_action": [held_number.number_id]},
        follow=True,
    )
    assert "Test call to (805) 555-0160" in response.content.decode()
    call = Call.objects.get()
    assert call.lease == held_number and call.attribution == CallAttribution.LEASE


def test_account_managers_cannot_place_test_calls(client, held_number):
    from django.contrib.auth.models import Group

    manager = factories.UserFactory(username="manny", is_staff=True)
    manager.groups.add(Group.objects.get(name="Account managers"))
    client.force_login(manager)
    page = client.get(reverse("admin:ringpools_promonumber_changelist")).content.decode()
    assert "place_test_call" not in page


def test_time_shown_on_the_pool_list_uses_the_accounts_zone(client, staff):
    with time_machine.travel(NOW, tick=False):
        pool = factories.RingPoolFactory(last_overflow_at=NOW)
        page = client.get(reverse("admin:ringpools_ringpool_change", args=[pool.pk])).content.decode()
    assert "2026-11-28 21:30 PST" in page
