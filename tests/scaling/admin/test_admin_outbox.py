"""The carrier outbox and the month-end decisions in admin: visible to account managers, never editable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from scaling.choices import Trigger
from scaling.models import CarrierOrder, MonthlyPrune
from scaling.pruning.run import ringpools_prune
from scaling.services import pool_number_add, pool_number_remove
from scaling.supply.carrier import TransientCarrierError
from scaling.supply.inventory import InventoryCarrier
from tests import factories

pytestmark = pytest.mark.django_db
LAST_DAY = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # 12:00 in Los Angeles, the last day of November


@pytest.fixture
def account_manager(client):
    call_command("register_roles", stdout=None)
    user = factories.StaffFactory(username="amy", is_superuser=False)
    user.groups.add(Group.objects.get(name="Account managers"))
    client.force_login(user)
    return user


@pytest.fixture
def orders():
    pool = factories.RingPoolFactory(area_code="805")
    factories.InventoryNumberFactory.create_batch(3)
    number = pool_number_add(
        pool=pool, trigger=Trigger.MANUAL, reason="set-up", carrier=InventoryCarrier()
    ).number
    failing = InventoryCarrier(faults={"release": [TransientCarrierError("carrier busy (503)")]})
    pool_number_remove(number=number, trigger=Trigger.MANUAL, reason="not needed", carrier=failing)
    return pool


def test_an_account_manager_sees_a_release_waiting_for_the_carrier_and_why(client, account_manager, orders):
    page = client.get(reverse("admin:scaling_carrierorder_changelist") + "?state__exact=pending")
    assert page.status_code == 200
    text = page.content.decode()
    assert "carrier busy (503)" in text and "Release" in text
    pending = CarrierOrder.objects.get(state="pending")
    detail = client.get(reverse("admin:scaling_carrierorder_change", args=[pending.pk]))
    assert detail.status_code == 200 and pending.request_id in detail.content.decode()


def test_the_outbox_and_the_monthly_decisions_cannot_be_written_in_admin(client, account_manager, orders):
    list(ringpools_prune(now=LAST_DAY))
    decision = MonthlyPrune.objects.get(pool=orders)
    order = CarrierOrder.objects.first()
    for label, obj in (("carrierorder", order), ("monthlyprune", decision)):
        assert client.get(reverse(f"admin:scaling_{label}_add")).status_code == 403
        before = client.get(reverse(f"admin:scaling_{label}_change", args=[obj.pk]))
        assert before.status_code == 200 and 'name="_save"' not in before.content.decode()
        assert (
            client.post(reverse(f"admin:scaling_{label}_delete", args=[obj.pk]), {"post": "yes"}).status_code
            == 403
        )
    assert (
        MonthlyPrune.objects.filter(pk=decision.pk).exists()
        and CarrierOrder.objects.filter(pk=order.pk).exists()
    )


def test_the_outbox_list_runs_a_bounded_number_of_queries(
    client, account_manager, django_assert_max_num_queries
):
    for _ in range(30):
        pool = factories.RingPoolFactory(area_code="805")
        factories.InventoryNumberFactory()
        pool_number_add(pool=pool, trigger=Trigger.MANUAL, reason="set-up", carrier=InventoryCarrier())
    with django_assert_max_num_queries(12):
        assert client.get(reverse("admin:scaling_carrierorder_changelist")).status_code == 200
