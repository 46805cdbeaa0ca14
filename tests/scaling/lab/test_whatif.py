"""A pool's recommended size and its what-ifs from its own 30 days (issue 22)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from scaling.lab.whatif import pool_recommendation
from tests import factories

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


def pool_with(numbers: int, **options):
    pool = factories.RingPoolFactory(**options)
    for _ in range(numbers):
        factories.PromoNumberFactory(pool=pool, acquired_at=NOW - timedelta(days=60))
    return pool


def busy(pool, at_once: int, at: datetime, *, presentations: int | None = None, overflows: int = 0) -> None:
    """`at_once` numbers held together for 30 minutes `at`, and the hour's figures."""
    for number in pool.numbers.order_by("id")[:at_once]:
        factories.LeaseFactory(number=number, started_at=at, expires_at=at + timedelta(minutes=30))
    factories.PoolHourlyFiguresFactory(
        pool=pool,
        hour=at.replace(minute=0, second=0, microsecond=0),
        presentations=(presentations if presentations is not None else at_once) + overflows,
        overflows=overflows,
    )


def test_a_pool_that_turned_nobody_away_is_sized_to_its_busiest_hour_plus_15_percent():
    pool = pool_with(10)
    busy(pool, 4, NOW - timedelta(days=3))
    busy(pool, 2, NOW - timedelta(days=1))
    advice = pool_recommendation(pool=pool, now=NOW)
    assert (advice.size, advice.busiest_hour, advice.recommended) == (10, 4, 5)
    assert advice.reason == (
        "Your busiest hour in the last 30 days held 4 numbers at once; "
        "5 keeps 15 % headroom: 5 fewer than today."
    )
    labels = [what_if.label for what_if in advice.what_ifs]
    assert "10 numbers (today)" in labels and "5 numbers (recommended)" in labels
    assert labels[-1] == "Adaptive policy, from 10 numbers"
    today = next(w for w in advice.what_ifs if w.label == "10 numbers (today)")
    assert today.turned_away == 0 and today.number_months == 10 and str(today.cost) == "10.00"


def test_a_pool_that_turned_visitors_away_is_sized_by_replaying_its_hours_with_room_for_all():
    pool = pool_with(2)
    busy(pool, 2, NOW - timedelta(days=2), presentations=30, overflows=25)
    advice = pool_recommendation(pool=pool, now=NOW)
    assert advice.turned_away == 25
    assert advice.busiest_hour > 2 and advice.recommended > 2
    assert advice.reason.startswith(
        "Your pool turned 25 visitors away in the last 30 days; replayed with room"
    )
    today = next(w for w in advice.what_ifs if w.label == "2 numbers (today)")
    recommended = next(w for w in advice.what_ifs if "(recommended)" in w.label)
    assert today.turned_away > recommended.turned_away


def test_the_recommendation_is_held_to_the_maximum_size_and_says_so():
    pool = pool_with(3, max_size=3)
    busy(pool, 3, NOW - timedelta(days=2), presentations=30, overflows=25)
    advice = pool_recommendation(pool=pool, now=NOW)
    assert advice.recommended == 3
    assert "but the maximum size is 3: raise it, or send this pool less traffic" in advice.reason


def test_the_other_policys_what_if_starts_as_a_pool_that_has_learnt_its_traffic():
    # A rush in the first days of the 30: as a new pool the adaptive what-if would buy 5 an interval
    # (its learning week); from today's size, learnt, it grows beyond the 20 it holds at the pace.
    pool = pool_with(20, max_size=200)
    busy(pool, 20, NOW - timedelta(days=28), presentations=120, overflows=60)
    adaptive = pool_recommendation(pool=pool, now=NOW).what_ifs[-1]
    assert adaptive.label == "Adaptive policy, from 20 numbers"
    added = adaptive.number_months - 20  # each number bought in the rush: one month, 28 days before now
    # One an interval at most, over the rush's hour and the holds after it (under 20 intervals); as a
    # new pool, 5 an interval, it would have bought 50.
    assert 1 <= added < 20, added
