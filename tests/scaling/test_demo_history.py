"""The demo's month of history, played through the product (issue 21, point 1): every record agrees
with every other one, and every rule the product enforces held while it was made. Nothing here knows
how the history was made; it reads what the pages read."""

from __future__ import annotations

import itertools
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db.models import Max, Q, Sum
from django.test import override_settings
from django.utils import timezone

from ringpools.choices import CallAttribution, NumberRole, NumberState
from ringpools.models import Call, Lease, PoolHourlyFigures, PromoNumber, RingPool
from scaling.choices import EventKind, Trigger
from scaling.demo import HISTORY_DAYS
from scaling.models import AutoScalingSettings, InventoryNumber, MonthlyPrune, ScalingEvent
from scaling.pruning.rule import (
    PRUNE_CALLED_WINDOW,
    PRUNE_OVERFLOW_WINDOW,
    PRUNE_PRESENTED_WINDOW,
    PRUNE_SHARE_PERCENT,
)
from tests.demo import seed_demo

pytestmark = pytest.mark.django_db
HISTORY_POOLS = ("rp_demo_local", "rp_demo_sf", "rp_demo_tollfree")


@pytest.fixture(scope="module")
def printed(django_db_setup, django_db_blocker) -> str:
    """The whole month, seeded once for this module (the tests only read it)."""
    # Figures written within each hand-out, as in every test (no flusher thread outlives the module).
    with django_db_blocker.unblock(), override_settings(RINGPOOL_FIGURES_FLUSH_SECONDS=0):
        yield seed_demo(days=None)
        call_command("flush", "--noinput", verbosity=0)


def figures(pool: RingPool) -> dict[str, int]:
    return PoolHourlyFigures.objects.filter(pool=pool).aggregate(
        presentations=Sum("presentations"), overflows=Sum("overflows"), calls=Sum("calls")
    )


def test_the_history_covers_the_month_and_says_what_it_played(printed):
    started = min(RingPool.objects.filter(key__in=HISTORY_POOLS).values_list("created_at", flat=True))
    assert timezone.now() - started >= timedelta(days=HISTORY_DAYS)
    played = re.search(r"([\d,]+) visitors \(([\d,]+) turned away\), ([\d,]+) calls", printed)
    assert played, printed
    visitors, overflows, calls = (int(group.replace(",", "")) for group in played.groups())
    pools = RingPool.objects.filter(key__in=HISTORY_POOLS)
    assert calls == Call.objects.filter(pool__in=pools).count() > 0
    assert overflows == sum(figures(pool)["overflows"] for pool in pools) > 0
    assert visitors == Lease.objects.filter(pool__in=pools).count() + overflows


def test_call_counts_agree_with_the_calls_and_each_numbers_last_call(printed):
    for pool in RingPool.objects.all():
        assert (figures(pool)["calls"] or 0) == Call.objects.filter(pool=pool).count(), pool.key
        for number in PromoNumber.objects.filter(pool=pool):
            last = Call.objects.filter(number=number).aggregate(at=Max("received_at"))["at"]
            assert number.last_called_at == last, number
    # Every call the visitors made is attributed: to the visit that was shown the number, or overflow.
    assert set(Call.objects.values_list("attribution", flat=True)) <= {
        CallAttribution.LEASE,
        CallAttribution.OVERFLOW,
    }


def test_presentations_agree_with_the_visits_and_each_numbers_last_presentation(printed):
    for pool in RingPool.objects.all():
        counted = figures(pool)
        # Each visitor is either given a number (a lease) or shown the overflow number.
        assert counted["presentations"] == Lease.objects.filter(pool=pool).count() + counted["overflows"]
        for number in PromoNumber.objects.filter(pool=pool, role=NumberRole.ROTATING):
            last = Lease.objects.filter(number=number).aggregate(at=Max("started_at"))["at"]
            assert number.last_presented_at == last, number


def test_the_settings_existed_before_the_pools_made_from_them(printed):
    settings = AutoScalingSettings.objects.get(account__slug="acme")
    first_entry = settings.history.order_by("history_date").first()
    for pool in RingPool.objects.all():
        assert first_entry.history_date < pool.created_at
        # The pool's own history starts when it was created, not when the demo was seeded.
        assert pool.history.order_by("history_date").first().history_date == pool.created_at


def month_ends(pool: RingPool, tz: ZoneInfo) -> list[tuple[date, datetime]]:
    """The months whose last local day passed while the pool existed, with Beat's first prune run on
    that day (minute 15 of an hour)."""
    ends = []
    day = pool.created_at.astimezone(tz).date()
    while day <= timezone.now().astimezone(tz).date():
        if (day + timedelta(days=1)).day == 1:
            midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
            first_run = midnight + timedelta(minutes=15)
            if pool.created_at <= first_run <= timezone.now():
                ends.append((day.replace(day=1), first_run))
        day += timedelta(days=1)
    return ends


def test_every_month_end_pruned_by_the_rule_and_left_its_record(printed):
    tz = ZoneInfo("America/Los_Angeles")
    removed_somewhere = 0
    for pool in RingPool.objects.filter(key__in=HISTORY_POOLS):
        ends = month_ends(pool, tz)
        assert ends, "a month of history has a month end"
        for month, at in ends:
            record = MonthlyPrune.objects.get(pool=pool, month=month)  # "no month-end prune yet" is false
            removals = ScalingEvent.objects.filter(
                pool=pool,
                kind=EventKind.NUMBER_REMOVED,
                trigger=Trigger.PRUNE,
                created_at__date__gte=at.date(),
            ).filter(created_at__lt=at + timedelta(days=1))
            assert record.removed == removals.count()
            rotating_then = (
                PromoNumber.objects.filter(
                    pool=pool, role=NumberRole.ROTATING, acquired_at__lte=record.decided_at
                )
                .filter(Q(released_at__isnull=True) | Q(released_at__gte=record.decided_at))
                .count()
            )
            # At most 20% of the rotating numbers, rounded down: a pool of 4 loses none.
            assert record.removed <= rotating_then * PRUNE_SHARE_PERCENT // 100
            if record.removed:
                overflowed = PoolHourlyFigures.objects.filter(
                    pool=pool, hour__gte=record.decided_at - PRUNE_OVERFLOW_WINDOW, overflows__gt=0
                )
                assert not overflowed.exists(), "a pool that overflowed in 30 days keeps its numbers"
            for event in removals:
                number = event.number
                assert number.state == NumberState.RELEASED
                assert not InventoryNumber.objects.filter(
                    number=number.number, sold_to__isnull=False
                ).exists()
                assert number.last_presented_at is None or number.last_presented_at < event.created_at - (
                    PRUNE_PRESENTED_WINDOW
                )
                assert number.last_called_at is None or number.last_called_at < event.created_at - (
                    PRUNE_CALLED_WINDOW
                )
            removed_somewhere += record.removed
    assert removed_somewhere >= 1, "the demo shows a month-end prune that removed a number"


def test_growth_followed_the_overflows_at_the_accounts_pace(printed):
    settings = AutoScalingSettings.objects.get(account__slug="acme")
    interval = timedelta(minutes=settings.growth_interval_minutes)
    grew_somewhere = 0
    for pool in RingPool.objects.filter(key__in=HISTORY_POOLS):
        # Decided at a pass's minute; the event is written when the carrier answered, moments later.
        growths = [
            at.replace(microsecond=0)
            for at in ScalingEvent.objects.filter(
                pool=pool, kind=EventKind.NUMBER_ADDED, trigger=Trigger.GROWTH
            )
            .order_by("created_at")
            .values_list("created_at", flat=True)
        ]
        grew_somewhere += len(growths)
        # One number per interval at most (the pace is settings.growth_step = 1 per 5 minutes).
        assert settings.growth_step == 1
        assert all(later - earlier >= interval for earlier, later in itertools.pairwise(growths))
        # Every hour that turned visitors away was answered by growth within the pace (no maximum hit).
        size = pool.numbers.filter(state=NumberState.ACTIVE, role=NumberRole.ROTATING).count()
        assert size < pool.max_size
        for hour in PoolHourlyFigures.objects.filter(pool=pool, overflows__gt=0).values_list(
            "hour", flat=True
        ):
            assert any(
                hour <= grown <= hour + timedelta(hours=1) + interval + timedelta(minutes=1)
                for grown in growths
            ), (
                pool.key,
                hour,
            )
        # And no growth without an overflow before it.
        overflow_hours = list(
            PoolHourlyFigures.objects.filter(pool=pool, overflows__gt=0).values_list("hour", flat=True)
        )
        for grown in growths:
            assert any(hour <= grown for hour in overflow_hours)
    assert grew_somewhere >= 3, "the demo's rush made a pool grow"
