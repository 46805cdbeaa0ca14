"""The pool's admin page says when the pool may next grow and why, shows its latest scaling events, and
says when the pool has outgrown its recent needs (the month-end prune's input)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from ringpools.models import PromoNumber, RingPool
from scaling.growth.outlook import growth_outlook
from scaling.growth.run import ringpools_grow
from scaling.supply.inventory import InventoryCarrier
from tests import factories

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


@pytest.fixture
def staff(client):
    client.force_login(factories.StaffFactory(username="sam"))
    return client


def page(client, pool: RingPool) -> str:
    response = client.get(reverse("admin:ringpools_ringpool_change", args=[pool.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_pool_page_shows_the_growth_it_just_made_and_when_the_next_is_allowed(staff):
    pool = factories.RingPoolFactory(area_code="805", max_size=10)
    factories.PromoNumberFactory(pool=pool)
    factories.InventoryNumberFactory()
    ringpools_grow(now=T0 - timedelta(minutes=1), carrier=InventoryCarrier())
    RingPool.objects.filter(pk=pool.pk).update(last_overflow_at=T0)
    ringpools_grow(now=T0 + timedelta(seconds=30), carrier=InventoryCarrier())
    RingPool.objects.filter(pk=pool.pk).update(last_overflow_at=T0 + timedelta(minutes=1))

    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        html = page(staff, pool)

    assert "Next growth" in html
    # The interval from the growth at 15:00:30 UTC, said in the account's zone (Los Angeles).
    assert "at 2026-11-26 07:05" in html
    assert "Number added" in html and "same area code" in html
    assert '<th scope="row">overflows since last growth</th>' in html and "Size 2 of at most 10" in html
    assert "request_id" not in html and "request id" not in html


def test_the_page_says_why_a_pool_never_grows_when_auto_scaling_is_off(staff):
    pool = factories.RingPoolFactory(auto_scaling_enabled=False)
    assert "never while auto-scaling is off for it: turned off for this pool" in page(staff, pool)


def test_a_pool_whose_rush_is_over_is_said_to_have_outgrown_its_needs():
    pool = factories.RingPoolFactory(min_size=1, max_size=20)
    numbers = factories.PromoNumberFactory.create_batch(10, pool=pool)
    PromoNumber.objects.filter(pk__in=[n.pk for n in numbers[:2]]).update(
        busy_until=T0 + timedelta(minutes=20)
    )
    RingPool.objects.filter(pk=pool.pk).update(last_overflow_at=T0 - timedelta(days=2))

    outlook = growth_outlook(pool=pool, now=T0)
    assert outlook.outgrown.startswith("The pool has outgrown its recent needs")
    assert "2 of 10 numbers in use now" in outlook.outgrown

    RingPool.objects.filter(pk=pool.pk).update(last_overflow_at=T0 - timedelta(hours=2))  # still rushing
    assert growth_outlook(pool=pool, now=T0).outgrown == ""
