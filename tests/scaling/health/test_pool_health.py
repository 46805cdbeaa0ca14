"""Pool health: the hourly figures behind the charts, at the edges of hours and of the window, and the
charts themselves (server-drawn SVG, a bounded number of queries whatever the history)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.choices import Role
from ringpools.choices import NumberRole, NumberState
from scaling.choices import EventKind, Trigger
from scaling.health.charts import pool_health_charts
from scaling.health.series import pool_health_series
from tests import factories

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
H = timedelta(hours=1)


def at(hour: int, minute: int = 0, days_ago: int = 0) -> datetime:
    return datetime(2026, 11, 20, hour, minute, tzinfo=UTC) - timedelta(days=days_ago)


@pytest.fixture
def pool():
    return factories.RingPoolFactory(name="Spring pool")


def position(series, moment: datetime) -> int:
    return series.hours.index(moment)


def number(pool, **fields):
    return factories.PromoNumberFactory(pool=pool, **{"acquired_at": at(0, days_ago=30), **fields})


def test_the_window_is_the_last_seven_days_by_the_hour_ending_with_the_current_one(pool):
    series = pool_health_series(pool=pool, now=NOW)
    assert len(series.hours) == 7 * 24
    assert series.hours[-1] == at(14) and series.hours[0] == at(15, days_ago=7)


def test_pool_size_counts_rotating_numbers_held_at_the_end_of_each_hour(pool):
    number(pool)
    number(pool, acquired_at=at(11, 30))
    number(pool, state=NumberState.RELEASED, released_at=at(13, 15))
    number(pool, state=NumberState.RELEASED, released_at=at(0, days_ago=20))  # gone before the window
    number(pool, role=NumberRole.OVERFLOW)  # not handed to visitors, not in the size
    series = pool_health_series(pool=pool, now=NOW)
    assert series.size[position(series, at(10))] == 2
    assert series.size[position(series, at(11))] == 3  # acquired during the hour
    assert series.size[position(series, at(12))] == 3
    assert series.size[position(series, at(13))] == 2  # released during the hour
    assert series.current_size == 2


def test_numbers_in_use_count_each_number_held_during_the_hour_once(pool):
    first, second = number(pool), number(pool)
    other_pool_number = number(factories.RingPoolFactory())
    factories.LeaseFactory(number=first, started_at=at(9, 50), expires_at=at(10, 10))
    factories.LeaseFactory(number=first, started_at=at(10, 20), expires_at=at(10, 40))
    factories.LeaseFactory(number=second, started_at=at(10, 30), expires_at=at(11, 0))  # ends on the hour
    factories.LeaseFactory(number=other_pool_number, started_at=at(10, 0), expires_at=at(10, 30))
    # Began before the window, still held in its first hour.
    factories.LeaseFactory(number=second, started_at=at(14, 50, days_ago=7), expires_at=at(15, 5, days_ago=7))
    series = pool_health_series(pool=pool, now=NOW)
    assert series.in_use[position(series, at(9))] == 1
    assert series.in_use[position(series, at(10))] == 2
    assert series.in_use[position(series, at(11))] == 0
    assert series.in_use[0] == 1
    assert series.peak_in_use == 2


def test_overflows_and_calls_sum_the_shards_of_each_hour_inside_the_window(pool):
    for shard in (0, 3):
        factories.PoolHourlyFiguresFactory(pool=pool, hour=at(9), shard=shard, overflows=2, calls=1)
    factories.PoolHourlyFiguresFactory(pool=pool, hour=at(14, days_ago=7), overflows=50, calls=50)  # before
    factories.PoolHourlyFiguresFactory(pool=pool, hour=at(15), overflows=50, calls=50)  # after now's hour
    factories.PoolHourlyFiguresFactory(hour=at(9), overflows=50, calls=50)  # another pool
    series = pool_health_series(pool=pool, now=NOW)
    assert series.overflows[position(series, at(9))] == 4
    assert series.calls[position(series, at(9))] == 2
    assert (series.total_overflows, series.total_calls) == (4, 2)


def test_growth_and_prune_events_are_marked_in_their_hour_and_nothing_else_is(pool):
    for kind, trigger, moment in [
        (EventKind.NUMBER_ADDED, Trigger.GROWTH, at(10, 5)),
        (EventKind.NUMBER_ADDED, Trigger.GROWTH, at(10, 55)),
        (EventKind.NUMBER_REMOVED, Trigger.PRUNE, at(23, 30, days_ago=1)),
        (EventKind.NUMBER_ADDED, Trigger.MANUAL, at(10, 5)),  # staff, not auto-scaling
        (EventKind.GROW_SKIPPED, Trigger.GROWTH, at(10, 5)),
        (EventKind.NUMBER_ADDED, Trigger.GROWTH, at(14, 59, days_ago=7)),  # just before the window
    ]:
        factories.ScalingEventFactory(pool=pool, kind=kind, trigger=trigger, created_at=moment)
    factories.ScalingEventFactory(kind=EventKind.NUMBER_ADDED, trigger=Trigger.GROWTH, created_at=at(10, 5))
    series = pool_health_series(pool=pool, now=NOW)
    assert series.growth[position(series, at(10))] == 2
    assert series.prune[position(series, at(23, days_ago=1))] == 1
    assert (sum(series.growth), sum(series.prune)) == (2, 1)


def history(pool, days: int) -> None:
    numbers = [number(pool) for _ in range(5)]
    figures, leases = [], []
    for hour in range(days * 24):
        moment = at(14) - H * hour
        figures.append(factories.PoolHourlyFiguresFactory.build(pool=pool, hour=moment, overflows=1, calls=2))
        leases.append(
            factories.LeaseFactory.build(
                number=numbers[hour % 5], started_at=moment, expires_at=moment + timedelta(minutes=20)
            )
        )
        if hour % 24 == 0:
            factories.ScalingEventFactory(
                pool=pool, kind=EventKind.NUMBER_ADDED, trigger=Trigger.GROWTH, created_at=moment
            )
    type(figures[0]).objects.bulk_create(figures)
    type(leases[0]).objects.bulk_create(leases)


def test_the_charts_take_the_same_few_queries_for_a_week_or_a_year_of_history():
    counts = []
    for days in (2, 365):
        pool = factories.RingPoolFactory()
        history(pool, days)
        pool = type(pool).objects.select_related("account").get(pk=pool.pk)
        with CaptureQueriesContext(connection) as queries:
            pool_health_charts(pool=pool, now=NOW)
        reads = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("SELECT", "WITH"))]
        counts.append(len(reads))
    assert counts == [4, 4]  # figures, sizes, events, numbers in use


def test_the_charts_are_svg_with_the_pool_name_escaped_and_a_verdict():
    pool = factories.RingPoolFactory(name="<script>alert(1)</script>")
    number(pool)
    number(pool)
    factories.PoolHourlyFiguresFactory(pool=pool, hour=at(9), overflows=3)
    html = str(pool_health_charts(pool=pool, now=NOW))
    assert "<svg" in html and "<script>" not in html and "&lt;script&gt;" in html
    assert "Too small at times: 3 visitors were shown the overflow" in html
    for series in ("series-size", "series-in_use", "series-overflows", "series-calls"):
        assert series in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from outside


def test_a_pool_with_no_overflow_and_half_its_numbers_idle_looks_too_big(pool):
    first = number(pool)
    for _ in range(3):
        number(pool)
    factories.LeaseFactory(number=first, started_at=at(9, 0), expires_at=at(9, 30))
    html = str(pool_health_charts(pool=pool, now=NOW))
    assert "Possibly too big: at most 1 of 4 numbers were in use in any hour." in html


def test_a_member_sees_the_health_page_of_an_own_pool_for_a_day_a_week_or_a_month(pool):
    mia = factories.UserFactory(username="mia")
    factories.MembershipFactory(user=mia, account=pool.account, role=Role.MEMBER)
    client = Client()
    client.force_login(mia)
    url = reverse("pool-health", args=[pool.pk])
    page = client.get(url)
    assert page.status_code == 200 and '<figure class="pool-health"' in page.content.decode()
    assert client.get(url, {"days": 30}).status_code == 200
    assert client.get(url, {"days": 5}).status_code == 404
    listing = client.get(reverse("pool-list")).content.decode()
    assert url in listing and "Spring pool" in listing


@pytest.mark.postgres
def test_numbers_in_use_on_postgresql_match_the_leases(pool):
    """The per-hour count is raw SQL (a VALUES list of hours joined to the leases): PostgreSQL's turn."""
    first, second = number(pool), number(pool)
    factories.LeaseFactory(number=first, started_at=at(9, 50), expires_at=at(10, 10))
    factories.LeaseFactory(number=second, started_at=at(10, 30), expires_at=at(12, 0))
    series = pool_health_series(pool=pool, now=NOW)
    assert [series.in_use[position(series, at(h))] for h in (8, 9, 10, 11, 12)] == [0, 1, 2, 1, 0]


@pytest.mark.parametrize("days", [1, 7])
def test_the_same_window_gives_the_same_counts_on_the_admin_page_and_the_customers_charts(pool, days):
    """Issue 21: admin's "last 1 day" and the charts' 1-day range count the same hours."""
    from scaling.admin.dashboard import PERIODS, pool_dashboard

    first = at(14) - timedelta(days=days) + H  # the window's first hour; the one before is outside
    for hour, calls in ((first - H, 100), (first, 3), (at(14), 5)):
        factories.PoolHourlyFiguresFactory(pool=pool, hour=hour, calls=calls, overflows=calls)
    series = pool_health_series(pool=pool, now=NOW, days=days)
    period = next(
        p for (_, d), p in zip(PERIODS, pool_dashboard(pool=pool, now=NOW).periods, strict=True) if d == days
    )
    assert series.total_calls == period.calls == 8
    assert series.total_overflows == period.overflows == 8
