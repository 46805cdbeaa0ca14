"""The adaptive policy's growth in the real grow pass (issue 22): one number per visitor turned away
since the last growth, at most five an interval; overflows a growth answered are not counted again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ringpools.choices import PresentationKind
from ringpools.handout import present_number
from ringpools.models import PoolHourlyFigures, RingPool
from ringpools.selectors import handout_pool
from scaling.choices import EventKind, ScalingPolicy
from tests import factories
from tests.scaling.growth.test_growth import events, grow, minutes, overflow, size, stock

pytestmark = pytest.mark.django_db


def pool_under(policy: str) -> RingPool:
    pool = factories.RingPoolFactory(area_code="805", region="CA", max_size=50)
    factories.AutoScalingSettingsFactory(account=pool.account, policy=policy)
    factories.PromoNumberFactory(pool=pool)
    stock(30)
    grow(minutes(-1))  # the first pass sees auto-scaling on for the pool
    return pool


def turn_away(pool: RingPool, visitors: int, at) -> None:
    for _ in range(visitors):
        overflow(pool, at)


def test_a_pass_buys_one_number_per_visitor_turned_away_since_the_last_growth():
    pool = pool_under(ScalingPolicy.ADAPTIVE)
    turn_away(pool, 3, minutes(0))
    assert grow(minutes(0.5)).added == 3
    assert size(pool) == 4
    reason = events(pool, EventKind.NUMBER_ADDED)[-1].reason
    assert (
        "adaptive: 3 visitors turned away since the last growth, one number each, at most 5 per interval"
        in reason
    )
    # Two more turned away in the same hour: the three the growth answered are not counted again.
    turn_away(pool, 2, minutes(6))
    assert grow(minutes(6.5)).added == 2
    assert size(pool) == 6


def test_at_most_five_numbers_an_interval_and_the_seeds_rule_stays_one():
    adaptive, seed = pool_under(ScalingPolicy.ADAPTIVE), pool_under(ScalingPolicy.SEED)
    for pool in (adaptive, seed):
        turn_away(pool, 9, minutes(0))
    report = grow(minutes(0.5))
    added = {plan.pool.pk: plan.added for plan in report.plans}
    assert added == {adaptive.pk: 5, seed.pk: 1}
    # The pace still decides when: nothing before the interval is over, whatever is turned away.
    turn_away(adaptive, 4, minutes(2))
    assert grow(minutes(2.5)).added == 0
    # Counted since the last growth: the 4 turned away after it (the first burst's 9 were answered).
    assert grow(minutes(5.5)).added == 4


def test_a_waiting_visitors_keep_alives_are_overflows_but_not_more_visitors_turned_away():
    pool = pool_under(ScalingPolicy.ADAPTIVE)
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
    assert grow(minutes(4.5)).added == 2  # one number per visitor turned away, not per overflow shown
