"""The adaptive policy's growth in the real grow pass (issue 22): the numbers its visitors turned away
were short (a lease per interval each), at most five an interval, in a pool's first week of
auto-scaling and back up to the most it held in 90 days; beyond it, the pace's step and
only for a shortage (4 % of the pool turned away since the last growth, counted from the hourly
figures: overflows a growth answered, and a waiting visitor's keep-alives, are not counted again)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from ringpools.choices import NumberState, PresentationKind
from ringpools.handout import present_number
from ringpools.models import PoolHourlyFigures, RingPool
from ringpools.selectors import handout_pool
from scaling.choices import EventKind, ScalingPolicy
from scaling.growth.outlook import growth_outlook
from scaling.models import CarrierOrder
from scaling.tasks import grow_ringpools
from tests import factories
from tests.scaling.growth.test_growth import T0, events, grow, minutes, overflow, size, stock

pytestmark = pytest.mark.django_db

LONG_AGO = T0 - timedelta(days=200)


def pool_under(policy: str, *, numbers: int = 1, learnt: bool = False, lease_seconds: int = 1800) -> RingPool:
    """A pool of `numbers` numbers bought long ago, auto-scaling on for it from a minute before T0;
    `learnt`: created 8 days before (else: in its first week)."""
    pool = factories.RingPoolFactory(area_code="805", region="CA", max_size=200, lease_seconds=lease_seconds)
    factories.AutoScalingSettingsFactory(account=pool.account, policy=policy)
    for _ in range(numbers):
        factories.PromoNumberFactory(pool=pool, acquired_at=LONG_AGO)
    stock(30)
    grow(minutes(-1))  # the first pass sees auto-scaling on for the pool
    if learnt:
        RingPool.objects.filter(pk=pool.pk).update(created_at=minutes(-8 * 24 * 60))
    else:
        RingPool.objects.filter(pk=pool.pk).update(created_at=minutes(-2))
    return pool


def turn_away(pool: RingPool, visitors: int, at) -> None:
    for _ in range(visitors):
        overflow(pool, at)


def test_in_its_first_week_a_pool_learns_its_traffic_five_numbers_an_interval():
    adaptive, seed = pool_under(ScalingPolicy.ADAPTIVE), pool_under(ScalingPolicy.SEED)
    for pool in (adaptive, seed):
        turn_away(pool, 1, minutes(0))
    report = grow(minutes(0.5))
    assert {plan.pool.pk: plan.added for plan in report.plans} == {adaptive.pk: 5, seed.pk: 1}
    reason = events(adaptive, EventKind.NUMBER_ADDED)[-1].reason
    assert (
        "adaptive: 1 visitor turned away since the last growth, about 6 numbers short (a 30 min lease per "
        "5 min interval each), in the pool's first 7 days (created 2 min 30 s ago)"
    ) in reason
    # The pace still decides when: nothing before the interval is over, whatever is turned away.
    turn_away(adaptive, 4, minutes(2))
    assert grow(minutes(2.5)).added == 0
    assert grow(minutes(5.5)).added == 5
    assert size(adaptive) == 11


def test_with_a_five_minute_lease_each_visitor_turned_away_was_one_number_short():
    pool = pool_under(ScalingPolicy.ADAPTIVE, lease_seconds=300)
    turn_away(pool, 1, minutes(0))
    assert grow(minutes(0.5)).added == 1
    turn_away(pool, 3, minutes(5))
    assert grow(minutes(5.5)).added == 3
    assert "about 3 numbers short (a 5 min lease per 5 min interval each)" in (
        events(pool, EventKind.NUMBER_ADDED)[-1].reason
    )


def test_after_its_first_week_a_pool_regrows_fast_only_to_the_most_it_held_in_90_days():
    pool = pool_under(ScalingPolicy.ADAPTIVE, numbers=2, learnt=True)
    for days_ago in (30, 60):  # released at renewals: the pool held 2 + 6 = 8 at once until then
        for _ in range(3):
            factories.PromoNumberFactory(
                pool=pool,
                acquired_at=LONG_AGO,
                state=NumberState.RELEASED,
                released_at=T0 - timedelta(days=days_ago),
            )
    turn_away(pool, 1, minutes(0))
    assert grow(minutes(0.5)).added == 5
    assert "it held 8 numbers at once in the last 90 days: it regrows towards them" in (
        events(pool, EventKind.NUMBER_ADDED)[-1].reason
    )
    turn_away(pool, 1, minutes(5))
    assert grow(minutes(5.5)).added == 1  # up to 8, no further
    assert size(pool) == 8
    # Beyond 8, a shortage is 4 % of the pool, at least one visitor: the pace's one number.
    turn_away(pool, 1, minutes(10))
    assert grow(minutes(10.5)).added == 1
    reason = events(pool, EventKind.NUMBER_ADDED)[-1].reason
    assert "a shortage beyond the 8 numbers it held at once in the last 90 days; pace 1 per 5 min" in reason


@pytest.mark.parametrize(
    ("released_before", "added"), [(timedelta(days=90), 1), (timedelta(days=90, seconds=-1), 5)]
)
def test_numbers_released_90_days_ago_are_forgotten(released_before, added):
    pool = pool_under(ScalingPolicy.ADAPTIVE, numbers=2, learnt=True)
    for _ in range(6):
        factories.PromoNumberFactory(
            pool=pool,
            acquired_at=LONG_AGO,
            state=NumberState.RELEASED,
            released_at=minutes(0.5) - released_before,
        )
    turn_away(pool, 1, minutes(0))
    assert grow(minutes(0.5)).added == added


def test_beyond_the_most_it_held_a_large_pool_waits_for_a_shortage_and_says_so():
    pool = pool_under(ScalingPolicy.ADAPTIVE, numbers=30, learnt=True)  # a shortage: 2 (4 % of 30)
    turn_away(pool, 1, minutes(0))
    report = grow(minutes(0.5))
    assert report.added == 0 and report.plans[0].outcome == "waits for more visitors turned away"
    outlook = growth_outlook(pool=pool, now=minutes(1))
    assert outlook.next_growth.startswith("when more visitors are turned away — ")
    assert "grows beyond them for a shortage of 2 (4% of 30, at least one)" in outlook.next_growth
    turn_away(pool, 1, minutes(2))  # the second, still since the last growth
    assert grow(minutes(2.5)).added == 1
    assert size(pool) == 31


def test_a_waiting_visitors_keep_alives_are_overflows_but_not_more_visitors_turned_away():
    pool = pool_under(ScalingPolicy.ADAPTIVE, numbers=75, learnt=True)  # a shortage: 3 (4 % of 75)
    turn_away(pool, 1, minutes(0))
    waiting = f"waiting-{pool.pk}"
    for second in range(0, 240, 60):  # a second visitor waits four minutes on an open page
        shown = present_number(
            pool=handout_pool(pool.key),
            visitor_id=waiting,
            keepalive=second > 0,
            now=minutes(0) + timedelta(seconds=second),
        )
        assert shown.kind != PresentationKind.PROMO
    figures = PoolHourlyFigures.objects.get(pool=pool)
    assert (figures.overflows, figures.turned_away) == (5, 2)
    assert grow(minutes(4.5)).added == 0  # two visitors turned away, not five
    turn_away(pool, 1, minutes(4.6))
    assert grow(minutes(4.75)).added == 1


def test_beats_pass_ends_the_learning_week_at_exactly_7_days(django_capture_on_commit_callbacks):
    at = minutes(30)
    learning = pool_under(ScalingPolicy.ADAPTIVE)
    learnt = pool_under(ScalingPolicy.ADAPTIVE)
    RingPool.objects.filter(pk=learning.pk).update(created_at=at - timedelta(days=7, seconds=-1))
    RingPool.objects.filter(pk=learnt.pk).update(created_at=at - timedelta(days=7))
    for pool in (learning, learnt):
        turn_away(pool, 1, at - timedelta(seconds=10))
    with time_machine.travel(at, tick=False), django_capture_on_commit_callbacks(execute=False):
        assert grow_ringpools() == 5 + 1
    orders = {pool.pk: CarrierOrder.objects.filter(pool=pool).count() for pool in (learning, learnt)}
    assert orders == {learning.pk: 5, learnt.pk: 1}  # learnt: beyond the one number it ever held
