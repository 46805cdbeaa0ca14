"""Pools grow while visitors are turned away (SPEC §6, the seed article), in controlled time, through the
real hand-out: overflows are real presentations, growth is the real pass with the inventory carrier."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ringpools.choices import NumberRole, NumberState, NumberType, PresentationKind
from ringpools.handout import present_number
from ringpools.models import Call, RingPool
from ringpools.selectors import handout_pool
from scaling.choices import EventKind, GrowthMode, Scope
from scaling.growth.outlook import growth_outlook
from scaling.growth.run import ringpools_grow
from scaling.models import CarrierOrder, ScalingEvent
from scaling.services import ringpool_update
from scaling.supply.inventory import InventoryCarrier
from tests import factories

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
visitors = itertools.count()


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def overflow(pool: RingPool, at: datetime) -> str:
    """New visitors arrive until one is turned away (every free number is taken first); returns the kind."""
    for _ in range(200):
        shown = present_number(
            pool=handout_pool(pool.key), visitor_id=f"visitor-{next(visitors):06d}", now=at
        )
        if shown.kind != PresentationKind.PROMO:
            return shown.kind
    raise AssertionError("the pool never overflowed")


def grow(at: datetime, **options):
    return ringpools_grow(now=at, carrier=options.pop("carrier", InventoryCarrier()), **options)


def size(pool: RingPool) -> int:
    return pool.numbers.filter(state=NumberState.ACTIVE, role=NumberRole.ROTATING).count()


def events(pool: RingPool, kind: str) -> list[ScalingEvent]:
    return list(ScalingEvent.objects.filter(pool=pool, kind=kind).order_by("id"))


def stock(count: int, area_code: str = "805", region: str = "CA", number_type: str = NumberType.LOCAL):
    prefix = {"805": 4, "415": 5, "888": 6}[area_code]
    for _ in range(count):
        factories.InventoryNumberFactory(
            number=f"+1{area_code}{prefix}{next(visitors) % 1000000:06d}",
            area_code="" if number_type == NumberType.TOLL_FREE else area_code,
            region=region,
            number_type=number_type,
        )


@pytest.fixture
def pool() -> RingPool:
    pool = factories.RingPoolFactory(area_code="805", region="CA", max_size=50)
    factories.PromoNumberFactory(pool=pool)
    stock(20)
    grow(minutes(-1))  # the first pass sees auto-scaling on for the pool
    return pool


def test_an_overflow_every_minute_for_30_minutes_grows_the_pool_by_exactly_6(pool):
    for minute in range(30):
        assert overflow(pool, minutes(minute)) == PresentationKind.DESTINATION
        grow(minutes(minute) + timedelta(seconds=30))

    assert size(pool) == 1 + 6
    added = events(pool, EventKind.NUMBER_ADDED)
    assert [e.created_at.minute for e in added] == [0, 5, 10, 15, 20, 25]
    assert added[1].figures["size_before"] == 2 and added[1].figures["size_after"] == 3
    assert added[1].figures["match"] == "area_code" and added[1].figures["carrier_ref"].startswith("INV")
    assert added[1].figures["overflows_since_last_growth"] >= 5
    assert added[1].trigger == "growth"
    assert "overflow presented 30 s ago, after the last growth 5 min ago" in added[1].reason


def test_overflows_after_the_last_growth_still_earn_the_next_number_when_its_interval_is_up(pool):
    overflow(pool, minutes(0))
    grow(minutes(0.5))
    overflow(pool, minutes(1))  # after the growth, during its interval
    assert grow(minutes(2)).added == 0
    assert grow(minutes(5.5)).added == 1  # no new overflow needed: the one at minute 1 earns it
    assert grow(minutes(11)).added == 0  # nothing since
    assert size(pool) == 3


def test_no_overflow_no_growth(pool):
    for minute in range(30):
        present_number(pool=handout_pool(pool.key), visitor_id="the-only-visitor", now=minutes(minute))
        grow(minutes(minute + 0.5))
    assert size(pool) == 1
    assert not CarrierOrder.objects.exists()


def test_an_overflow_presented_and_never_called_still_grows_the_pool():
    account = factories.AccountFactory()
    factories.AutoScalingSettingsFactory(account=account, include_overflow_number=True)
    pool = factories.RingPoolFactory(account=account, max_size=10)
    factories.PromoNumberFactory(pool=pool)
    factories.PromoNumberFactory(pool=pool, role=NumberRole.OVERFLOW)
    stock(2)
    grow(minutes(-1))

    assert overflow(pool, minutes(0)) == PresentationKind.OVERFLOW
    grow(minutes(0.5))

    assert not Call.objects.exists()
    assert size(pool) == 2


def test_percentage_mode_grows_by_a_share_of_the_pool_rounded_up_and_capped():
    account = factories.AccountFactory()
    factories.AutoScalingSettingsFactory(
        account=account, growth_mode=GrowthMode.PERCENTAGE, growth_percent=50, growth_cap_per_interval=3
    )
    pool = factories.RingPoolFactory(account=account, max_size=10)
    factories.PromoNumberFactory.create_batch(3, pool=pool)
    stock(20)
    grow(minutes(-1))
    sizes = []
    for interval in range(4):
        overflow(pool, minutes(5 * interval))
        grow(minutes(5 * interval + 0.5))
        sizes.append(size(pool))
    # 3 → +2 (50% of 3 rounded up) → 5 → +3 (cap; 50% is 3) → 8 → +2 (cap 3, but the maximum is 10) → 10
    assert sizes == [5, 8, 10, 10]
    assert "50% of the pool per 5 min, at most 3" in events(pool, EventKind.NUMBER_ADDED)[0].reason
    assert len(events(pool, EventKind.CAP_REACHED)) == 1


def test_turning_auto_scaling_on_does_not_count_overflows_from_before(pool):
    staff = factories.StaffFactory()
    ringpool_update(pool=pool, actor=staff, auto_scaling_enabled=False)
    grow(minutes(0))
    overflow(pool, minutes(1))
    grow(minutes(1.5))
    ringpool_update(pool=pool, actor=staff, auto_scaling_enabled=True)
    for minute in range(2, 12):
        grow(minutes(minute))
    assert size(pool) == 1  # the overflow at minute 1 was presented while auto-scaling was off

    overflow(pool, minutes(12))
    grow(minutes(12.5))
    assert size(pool) == 2


def test_an_account_getting_the_feature_does_not_count_overflows_from_before(pool):
    pool.account.auto_scaling_available = False
    pool.account.save()
    grow(minutes(0))
    overflow(pool, minutes(1))
    grow(minutes(1.5))
    pool.account.auto_scaling_available = True
    pool.account.save()
    grow(minutes(2))
    grow(minutes(8))
    assert size(pool) == 1


def test_a_local_pool_takes_the_area_code_then_the_region_then_toll_free():
    pool = factories.RingPoolFactory(area_code="805", region="CA", max_size=10)
    factories.PromoNumberFactory(pool=pool)
    stock(1, "805")
    stock(1, "415", region="CA")
    stock(1, "888", region="", number_type=NumberType.TOLL_FREE)
    grow(minutes(-1))
    for interval in range(4):
        overflow(pool, minutes(5 * interval))
        grow(minutes(5 * interval + 0.5))

    added = events(pool, EventKind.NUMBER_ADDED)
    assert [e.figures["match"] for e in added] == ["area_code", "region", "toll_free_fallback"]
    assert [e.figures["area_code"] for e in added] == ["805", "415", ""]
    assert "toll-free fallback" in added[2].reason
    assert pool.numbers.filter(number_type=NumberType.TOLL_FREE).count() == 1
    failed = events(pool, EventKind.FAILED)
    assert len(failed) == 1 and failed[0].reason == "the carrier has no number to offer"
    assert CarrierOrder.objects.get(pool=pool, state="pending").figures["size_before"] == 4


def test_a_toll_free_pool_gets_toll_free_numbers():
    pool = factories.RingPoolFactory(number_type=NumberType.TOLL_FREE, area_code="", region="", max_size=10)
    factories.PromoNumberFactory(pool=pool, number="+18885550100", number_type=NumberType.TOLL_FREE)
    stock(2, "805")
    stock(1, "888", region="", number_type=NumberType.TOLL_FREE)
    grow(minutes(-1))
    overflow(pool, minutes(0))
    grow(minutes(0.5))
    (added,) = events(pool, EventKind.NUMBER_ADDED)
    assert added.figures["match"] == "toll_free" and added.number.number_type == NumberType.TOLL_FREE


def test_no_number_anywhere_is_told_once_and_the_due_number_is_bought_when_stock_comes(pool):
    from scaling.models import InventoryNumber
    from scaling.supply.outbox import carrier_orders_reconcile

    InventoryNumber.objects.all().delete()
    overflow(pool, minutes(0))
    report = grow(minutes(0.5))
    assert report.plans[0].outcome == "added 0, 1 to retry (the carrier has no number to offer)"
    assert len(events(pool, EventKind.FAILED)) == 1
    overflow(pool, minutes(6))
    assert grow(minutes(6.5)).added == 0  # a purchase waits for its retry: nothing more is decided
    assert CarrierOrder.objects.filter(pool=pool).count() == 1

    carrier_orders_reconcile(carrier=InventoryCarrier(), now=minutes(7))  # back-off over: tried again
    assert len(events(pool, EventKind.FAILED)) == 1  # the same reason: not told again
    stock(1)
    carrier_orders_reconcile(carrier=InventoryCarrier(), now=minutes(10))
    assert size(pool) == 2  # the number due since minute 0, never dropped
    (added,) = events(pool, EventKind.NUMBER_ADDED)
    assert added.figures["overflows_since_last_growth"] >= 1


def test_reaching_the_maximum_size_is_one_event_per_episode_and_no_growth(pool):
    staff = factories.StaffFactory()
    ringpool_update(pool=pool, actor=staff, max_size=2)
    for minute in range(0, 30, 1):
        overflow(pool, minutes(minute))
        grow(minutes(minute + 0.5))
    assert size(pool) == 2
    (capped,) = events(pool, EventKind.CAP_REACHED)
    assert capped.figures == {
        "size": 2,
        "max_size": 2,
        "last_overflow_at": capped.figures["last_overflow_at"],
        "overflows_since_last_growth": capped.figures["overflows_since_last_growth"],
    }
    assert "maximum size of 2" in capped.reason

    ringpool_update(pool=pool, actor=staff, max_size=3)  # a new episode once the pool grows again
    for minute in range(30, 45):
        overflow(pool, minutes(minute))
        grow(minutes(minute + 0.5))
    assert size(pool) == 3
    assert len(events(pool, EventKind.CAP_REACHED)) == 2


def test_out_of_scope_pools_and_accounts_without_the_feature_do_not_grow_and_the_dry_run_says_why(pool):
    no_feature = factories.RingPoolFactory(
        name="No feature", account=factories.AccountFactory(auto_scaling_available=False)
    )
    out_of_scope = factories.RingPoolFactory(name="Out of scope")
    factories.AutoScalingSettingsFactory(account=out_of_scope.account, scope=Scope.SELECTED_CAMPAIGNS)
    for other in (no_feature, out_of_scope):
        factories.PromoNumberFactory(pool=other)
    grow(minutes(-1))
    for each in (pool, no_feature, out_of_scope):
        overflow(each, minutes(0))

    out = StringIO()
    call_command("grow_ringpools", "--at", minutes(0.5).isoformat(), "--dry-run", stdout=out)
    text = out.getvalue()
    assert "(dry run: nothing changed)" in text
    assert f"[{pool.key}] size 1/50, 1 overflows since its last growth: would add 1 (1 → 2)" in text
    assert "No feature" in text and "does not apply: feature not available to the account" in text
    assert "Out of scope" in text and "does not apply: campaign outside the account's scope" in text
    assert "Not due: 0 pools with auto-scaling on had no overflow since their last growth" in text
    assert "2 pools have auto-scaling off" in text
    assert not CarrierOrder.objects.exists() and size(pool) == 1  # a dry run changes nothing

    grow(minutes(0.5))
    assert [size(p) for p in (pool, no_feature, out_of_scope)] == [2, 1, 1]


def test_the_command_runs_the_pass_at_the_given_moment_and_reports_it(pool):
    overflow(pool, minutes(0))
    out = StringIO()
    call_command("grow_ringpools", "--at", minutes(0.5).isoformat(), stdout=out)
    assert "added 1" in out.getvalue() and "Numbers added: 1." in out.getvalue()
    assert size(pool) == 2


def test_a_pass_costs_the_same_queries_however_many_pools_are_idle(pool):
    def idle_pools(count: int) -> None:
        for _ in range(count):
            idle = factories.RingPoolFactory()
            factories.PromoNumberFactory(pool=idle)
            idle.last_overflow_at = minutes(-30)
            idle.save()

    def queries_of_a_pass(at: datetime) -> int:
        overflow(pool, at)
        grow(at + timedelta(seconds=20))  # first sight of new pools: rows created once
        overflow(pool, at + timedelta(minutes=5))
        with CaptureQueriesContext(connection) as context:
            assert grow(at + timedelta(minutes=5, seconds=30)).added == 1
        return len(context.captured_queries)

    idle_pools(5)
    few = queries_of_a_pass(minutes(0))
    idle_pools(40)
    many = queries_of_a_pass(minutes(20))
    assert few == many


def test_each_due_pool_adds_the_same_small_number_of_queries():
    def queries_with_due_pools(count: int, at: datetime) -> int:
        due = []
        for _ in range(count):
            each = factories.RingPoolFactory(area_code="805", max_size=10)
            factories.PromoNumberFactory(pool=each)
            due.append(each)
        stock(count)
        grow(at - timedelta(minutes=1))
        for each in due:
            overflow(each, at)
        with CaptureQueriesContext(connection) as context:
            assert grow(at + timedelta(seconds=30)).added == count
        RingPool.objects.filter(pk__in=[p.pk for p in due]).update(is_active=False)
        return len(context.captured_queries)

    one, two, four = (queries_with_due_pools(n, minutes(10 * i)) for i, n in enumerate((1, 2, 4)))
    per_pool = two - one
    assert four - two == 2 * per_pool
    # The decision with its order (2), the order's claim, its re-read and offer (4), the search and
    # purchase at the inventory (3), the pool and its size (2), the record: number, history, order,
    # event (~8).
    assert per_pool <= 21, per_pool


@pytest.mark.parametrize(
    "nonsense",
    [{"growth_mode": "fast"}, {"growth_percent": 0}, {"growth_percent": 101}, {"growth_cap_per_interval": 0}],
)
def test_the_database_refuses_a_pace_that_makes_no_sense(nonsense):
    from django.db import IntegrityError, transaction

    from scaling.models import AutoScalingSettings

    settings = factories.AutoScalingSettingsFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        AutoScalingSettings.objects.filter(pk=settings.pk).update(**nonsense)


@pytest.mark.parametrize("region", ["Santa Barbara, CA", "California", "ca", "Santa Barbara, California", ""])
def test_a_region_written_as_people_write_it_finds_a_same_state_number(region):
    """The field's own example, a state's name or code in any case; and with no region, the state
    the area code serves (805 is California)."""
    pool = factories.RingPoolFactory(area_code="805", region=region, max_size=10)
    factories.PromoNumberFactory(pool=pool)
    stock(1, "415", region="CA")  # none left in 805; one in California
    stock(1, "888", region="", number_type=NumberType.TOLL_FREE)
    grow(minutes(-1))
    overflow(pool, minutes(0))
    grow(minutes(0.5))

    (added,) = events(pool, EventKind.NUMBER_ADDED)
    assert added.number.area_code == "415"
    assert added.figures["match"] == ("region" if region else "area_region")
    assert "same region" in added.reason


@pytest.mark.parametrize(
    ("written", "state"),
    [
        ("CA", "CA"),
        ("ca", "CA"),
        ("California", "CA"),
        ("Santa Barbara, CA", "CA"),
        ("Santa Barbara CA", "CA"),
        ("St. Louis, MO", "MO"),
        ("Washington, D.C.", "DC"),
        ("new york", "NY"),
        ("Santa Barbara", ""),
        ("", ""),
    ],
)
def test_the_state_a_region_names(written, state):
    from ringpools.phone import state_of

    assert state_of(written) == state


@pytest.mark.parametrize(
    ("area_code", "state"), [("805", "CA"), ("212", "NY"), ("907", "AK"), ("604", ""), ("", "")]
)
def test_the_state_an_area_code_serves(area_code, state):
    from ringpools.phone import state_of_area_code

    assert state_of_area_code(area_code) == state


def test_a_region_that_names_no_state_is_refused_with_the_ways_to_write_one():
    from django.core.exceptions import ValidationError

    pool = factories.RingPoolFactory(area_code="805")
    with pytest.raises(ValidationError) as refused:
        ringpool_update(pool=pool, actor=factories.StaffFactory(), region="Santa Barbara")
    assert "Name a US state" in str(refused.value)
    ringpool_update(pool=pool, actor=factories.StaffFactory(), region="Santa Barbara, CA")
    assert RingPool.objects.get(pk=pool.pk).region == "Santa Barbara, CA"


def test_beats_pass_hands_over_the_orders_of_one_area_together_after_deciding_every_pool():
    pools = [factories.RingPoolFactory(area_code=code, max_size=10) for code in ("805", "415", "805", "805")]
    for each in pools:
        factories.PromoNumberFactory(pool=each)
    grow(minutes(-1))
    for each in pools:
        overflow(each, minutes(0))
    handed: list[list[int]] = []

    report = ringpools_grow(now=minutes(0.5), dispatch=handed.append)

    assert report.queued == 4 and report.added == 0  # decided and queued, nothing bought here
    by_pool = dict(CarrierOrder.objects.values_list("pk", "pool_id"))
    assert [[by_pool[pk] for pk in ids] for ids in handed] == [
        [pools[0].pk, pools[2].pk, pools[3].pk],
        [pools[1].pk],
    ]


def test_the_growth_outlook_names_the_accounts_zone_with_each_clock_time():
    account = factories.AccountFactory(timezone="America/Los_Angeles")
    pool = factories.RingPoolFactory(account=account, area_code="805", region="CA", max_size=10)
    factories.PromoNumberFactory(pool=pool)
    stock(2)
    grow(minutes(-1))
    overflow(pool, minutes(0))
    assert grow(minutes(0.5)).added == 1
    overflow(pool, minutes(1))  # due again, but the interval is not over: it waits until 15:05:30 UTC
    outlook = growth_outlook(pool=pool, now=minutes(2))
    assert outlook.next_growth.startswith("at 2026-11-26 07:05 PST — ")
