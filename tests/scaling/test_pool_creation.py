"""Pools are created through one service that applies the account's auto-scaling defaults (SPEC §5)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from ringpools.choices import NumberRole, NumberType, OverflowMode
from ringpools.models import PromoNumber, RingPool
from scaling.models import InventoryNumber, ScalingEvent
from scaling.services import pool_number_add, ringpool_create, ringpool_update
from tests.factories import (
    AccountFactory,
    AutoScalingSettingsFactory,
    CampaignFactory,
    DestinationNumberFactory,
    InventoryNumberFactory,
    StaffFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    account = AccountFactory()
    for line in range(101, 111):
        InventoryNumberFactory(number=f"+1805555{line:04d}", area_code="805", region="CA")
    for line in range(101, 104):
        InventoryNumberFactory(number=f"+1213555{line:04d}", area_code="213", region="CA")
    for line in range(101, 106):
        InventoryNumberFactory(number=f"+1888555{line:04d}", number_type=NumberType.TOLL_FREE, area_code="")
    return account


def create(account, **kwargs) -> RingPool:
    return ringpool_create(
        account=account,
        campaign=CampaignFactory(account=account),
        destination_number=DestinationNumberFactory(account=account),
        name="Pool",
        **kwargs,
    )


def test_a_new_pool_takes_the_defaults_auto_scaling_on_and_an_overflow_number(account):
    pool = create(account, area_code="805", size=3)
    assert pool.auto_scaling_enabled is True
    assert pool.overflow_mode == OverflowMode.OVERFLOW_NUMBER
    overflow = pool.overflow_number
    assert overflow is not None and overflow.area_code == "805"
    assert PromoNumber.objects.filter(pool=pool, role=NumberRole.ROTATING).count() == 3
    assert InventoryNumber.objects.filter(sold_to=account).count() == 4
    kinds = list(ScalingEvent.objects.filter(pool=pool).order_by("id").values_list("kind", flat=True))
    assert kinds == ["pool_created", "number_added", "number_added", "number_added", "number_added"]


def test_accounts_that_turn_the_defaults_off_get_pools_without_them(account):
    AutoScalingSettingsFactory(account=account, enable_for_new_pools=False, include_overflow_number=False)
    pool = create(account, area_code="805", size=1)
    assert pool.auto_scaling_enabled is False
    assert pool.overflow_mode == OverflowMode.DESTINATION_NUMBER
    assert pool.overflow_number is None


def test_local_pools_get_the_same_area_code_then_the_region_then_toll_free(account):
    pool = create(account, area_code="805", region="CA", size=0)
    matches = []
    for _ in range(13):
        number = pool_number_add(pool=pool, trigger="manual", reason="test").number
        matches.append(
            (
                number.area_code or "toll-free",
                ScalingEvent.objects.filter(number=number).get().figures["match"],
            )
        )
    # 10 in 805 minus the overflow number, then 3 in the same region (213), then toll-free.
    assert matches[:9] == [("805", "area_code")] * 9
    assert matches[9:12] == [("213", "region")] * 3
    assert matches[12] == ("toll-free", "toll_free_fallback")


def test_toll_free_pools_get_toll_free_numbers(account):
    pool = create(account, number_type=NumberType.TOLL_FREE, size=2)
    assert set(pool.numbers.values_list("number_type", flat=True)) == {NumberType.TOLL_FREE}


def test_when_the_carrier_runs_out_the_failure_is_recorded(account):
    pool = create(account, number_type=NumberType.TOLL_FREE, size=10)
    assert pool.numbers.count() == 5
    assert ScalingEvent.objects.filter(pool=pool, kind="failed", reason__contains="no number").exists()


def test_a_pool_cannot_use_another_accounts_campaign(account):
    with pytest.raises(ValidationError):
        ringpool_create(
            account=account,
            campaign=CampaignFactory(),
            name="x",
            destination_number=DestinationNumberFactory(account=account),
        )
    assert not RingPool.objects.exists()


def test_settings_changes_are_audited_with_before_and_after(account):
    staff = StaffFactory()
    pool = create(account, area_code="805", size=0)
    ringpool_update(pool=pool, actor=staff, max_size=80, lease_seconds=900)
    event = ScalingEvent.objects.get(pool=pool, kind="settings_changed")
    assert event.actor == staff
    assert event.figures == {
        "max_size": {"before": 50, "after": 80},
        "lease_seconds": {"before": 1800, "after": 900},
    }
    assert pool.history.first().history_user == staff


def test_invalid_settings_are_refused_and_nothing_is_recorded(account):
    pool = create(account, area_code="805", size=0)
    with pytest.raises(ValidationError):
        ringpool_update(pool=pool, actor=None, min_size=100, max_size=10)
    assert not ScalingEvent.objects.filter(kind="settings_changed").exists()
    assert RingPool.objects.get(pk=pool.pk).max_size == 50
