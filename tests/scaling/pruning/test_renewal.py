"""The adaptive policy's release at renewal (issue 22): just before a number's monthly renewal it goes
when the pool keeps its busiest hour's need plus headroom without it and nobody used it for a day; through
the outbox, with its event; the seed's rule never does this."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ringpools.choices import NumberState
from scaling.choices import EventKind, ScalingPolicy, Trigger
from scaling.health.series import peak_holds_per_hour
from scaling.models import ScalingEvent
from scaling.pruning.renewal import renewal_preview, renewals_release
from scaling.pruning.rule import BILLING_PERIOD
from scaling.supply.inventory import InventoryCarrier
from scaling.supply.outbox import carrier_orders_of, carrier_orders_run
from tests import factories

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
RENEWS_SOON = NOW - BILLING_PERIOD + timedelta(minutes=10)  # bought 30 days before ten minutes from now


def pool_of(policy: str, *, numbers: int = 6, acquired=RENEWS_SOON, presented=NOW - timedelta(days=3)):
    pool = factories.RingPoolFactory()
    factories.AutoScalingSettingsFactory(account=pool.account, policy=policy)
    for _ in range(numbers):
        factories.PromoNumberFactory(pool=pool, acquired_at=acquired, last_presented_at=presented)
    return pool


def busy_hour(pool, numbers: int, at=NOW - timedelta(days=2)) -> None:
    """`numbers` of the pool held at once for half an hour, `at`."""
    for number in pool.numbers.order_by("id")[:numbers]:
        factories.LeaseFactory(number=number, started_at=at, expires_at=at + timedelta(minutes=30))


def release(now=NOW):
    carrier = InventoryCarrier()
    return renewals_release(
        now=now,
        release=lambda ids: carrier_orders_run(orders=carrier_orders_of(ids), carrier=carrier, now=now),
    )


def test_idle_numbers_renewing_soon_go_down_to_the_busiest_hours_need_plus_its_headroom(
    django_capture_on_commit_callbacks,
):
    pool = pool_of(ScalingPolicy.ADAPTIVE, numbers=10)
    busy_hour(pool, 2)  # need: 2 + 3 x sqrt(2), rounded up = 7 (more than 15 % for a pool this small)
    with django_capture_on_commit_callbacks(execute=True):
        verdicts = release()
    gone = [v for v in verdicts if v.order_id is not None]
    assert len(verdicts) == 10 and len(gone) == 3
    assert pool.numbers.filter(state=NumberState.ACTIVE).count() == 7
    assert pool.numbers.filter(state=NumberState.RELEASED).count() == 3
    removed = ScalingEvent.objects.filter(pool=pool, kind=EventKind.NUMBER_REMOVED)
    assert removed.count() == 3 and {e.trigger for e in removed} == {Trigger.RENEWAL}
    assert "released at its renewal, unused for a day: the pool keeps" in removed.first().reason
    assert removed.first().figures["peak_in_use_7_days"] == 2
    kept = [v for v in verdicts if v.order_id is None]
    assert all("the pool needs 7" in v.decision.reason for v in kept)
    with django_capture_on_commit_callbacks(execute=True):
        assert not [v for v in release(NOW + timedelta(minutes=5)) if v.order_id is not None]  # decided once


def test_numbers_used_within_a_day_held_now_or_not_renewing_soon_stay():
    pool = pool_of(ScalingPolicy.ADAPTIVE, numbers=3, presented=NOW - timedelta(hours=23))
    later = pool_of(ScalingPolicy.ADAPTIVE, numbers=3, acquired=NOW - timedelta(days=10))
    verdicts = release()
    assert {v.number.pool_id for v in verdicts} == {pool.pk}  # the other pool renews in 20 days
    assert all(v.order_id is None and v.decision.rule == "presented" for v in verdicts)
    assert later.numbers.filter(state=NumberState.ACTIVE).count() == 3


def test_the_seeds_rule_releases_nothing_at_renewals():
    pool = pool_of(ScalingPolicy.SEED)
    assert release() == []
    assert pool.numbers.filter(state=NumberState.ACTIVE).count() == 6
    # The preview of that pool still says what the adaptive policy would do.
    assert len([v for v in renewal_preview(pool=pool, now=NOW) if v.decision.goes]) == 5  # need: min size 1


def test_the_busiest_hour_counts_numbers_held_at_the_same_moment():
    pool = factories.RingPoolFactory()
    a, b, c = (factories.PromoNumberFactory(pool=pool) for _ in range(3))
    ten = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    for number, start, end in ((a, 0, 30), (b, 15, 45), (c, 30, 70)):
        factories.LeaseFactory(
            number=number, started_at=ten + timedelta(minutes=start), expires_at=ten + timedelta(minutes=end)
        )
    # 10:15-10:30 two at once; at 10:30 one ends as another begins (still two); 11:00-11:10 one.
    assert peak_holds_per_hour(pool=pool, start=ten - timedelta(hours=1), end=ten + timedelta(hours=3)) == [
        0,
        2,
        1,
        0,
    ]
