"""The month-end prune run (SPEC §7): last local day only, once per pool and month, removal through the
carrier outbox, the preview equal to the run, the audit trail and the bill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
import time_machine
from django.core.exceptions import ValidationError

from ringpools.choices import NumberRole, NumberState
from ringpools.handout import present_number
from ringpools.models import PromoNumber
from ringpools.selectors import handout_pool
from scaling.choices import EventKind, OrderState, PruneOutcome
from scaling.models import CarrierOrder, MonthlyPrune, ScalingEvent
from scaling.pruning import run as pruning
from scaling.pruning.bill import account_bill
from scaling.pruning.plans import pool_prune_preview
from scaling.pruning.run import ringpools_prune
from scaling.services import promo_number_pin, promo_number_unpin
from scaling.supply.carrier import TransientCarrierError
from scaling.supply.inventory import InventoryCarrier
from scaling.supply.outbox import carrier_orders_of, carrier_orders_reconcile, carrier_orders_run
from tests import factories

pytestmark = pytest.mark.django_db

# 2026-11-30 20:00 UTC is Nov 30, 12:00 in Los Angeles (its last day of November).
LAST_DAY = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
IDLE = LAST_DAY - timedelta(days=20)


def make_pool(size: int = 10, *, idle: int = 10, account=None, **options):
    """A pool of `size` rotating numbers (the first `idle` of them unused for 20+ days, the rest
    presented an hour ago) and an overflow number."""
    account = account or factories.AccountFactory(timezone="America/Los_Angeles")
    pool = factories.RingPoolFactory(account=account, **options)
    for position in range(size):
        presented = IDLE - timedelta(days=position) if position < idle else LAST_DAY - timedelta(hours=1)
        factories.PromoNumberFactory(
            pool=pool, acquired_at=LAST_DAY - timedelta(days=90), last_presented_at=presented
        )
    factories.PromoNumberFactory(
        pool=pool, role=NumberRole.OVERFLOW, acquired_at=LAST_DAY - timedelta(days=90)
    )
    return pool


def run(now=LAST_DAY, carrier=None, **kwargs):
    carrier = carrier or InventoryCarrier()
    release = kwargs.pop(
        "release", lambda ids: carrier_orders_run(orders=carrier_orders_of(ids), carrier=carrier, now=now)
    )
    return list(ringpools_prune(now=now, release=release, **kwargs))


def states(pool) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in pool.numbers.filter(role=NumberRole.ROTATING).values_list("state", flat=True):
        counts[state] = counts.get(state, 0) + 1
    return counts


def test_on_the_last_day_it_removes_the_longest_unused_20_percent_and_releases_them():
    pool = make_pool(10, idle=6)
    longest_unused = list(
        pool.numbers.filter(role=NumberRole.ROTATING)
        .order_by("last_presented_at")
        .values_list("pk", flat=True)[:2]
    )

    [result] = run()

    assert result.outcome == PruneOutcome.PRUNED
    assert sorted(v.number.id for v in result.removed) == sorted(longest_unused)
    assert states(pool) == {NumberState.ACTIVE: 8, NumberState.RELEASED: 2}
    record = MonthlyPrune.objects.get(pool=pool)
    assert (record.month.isoformat(), record.removed, record.outcome) == (
        "2026-11-01",
        2,
        PruneOutcome.PRUNED,
    )
    removed = ScalingEvent.objects.filter(kind=EventKind.NUMBER_REMOVED).order_by("number_id")
    assert sorted(e.number_id for e in removed) == sorted(longest_unused)
    event = removed[0]
    assert event.reason.startswith("month-end prune: unused: presented")
    assert (
        event.figures["rule"] == "unused" and event.figures["cap"] == 2 and event.figures["cap_hit"] is True
    )
    assert event.figures["days_since_presented"] >= 20
    assert ScalingEvent.objects.filter(kind=EventKind.NUMBER_RELEASED).count() == 2


@pytest.mark.parametrize(
    "day", [datetime(2026, 11, 29, 20, tzinfo=UTC), datetime(2026, 12, 1, 20, tzinfo=UTC)]
)
def test_on_any_other_day_it_removes_nothing(day):
    pool = make_pool(10)
    assert run(now=day) == []
    assert states(pool) == {NumberState.ACTIVE: 10} and not MonthlyPrune.objects.exists()


def test_each_account_is_pruned_on_its_own_local_last_day():
    # 2026-11-29 11:00 UTC: Nov 30, 01:00 at Kiritimati (UTC+14); Nov 29, 03:00 in Los Angeles.
    kiritimati = make_pool(10, account=factories.AccountFactory(timezone="Pacific/Kiritimati"))
    los_angeles = make_pool(10, account=factories.AccountFactory(timezone="America/Los_Angeles"))
    first = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)
    assert [r.plan.pool for r in run(now=first)] == [kiritimati]
    # 2026-11-30 11:00 UTC: Dec 1 at Kiritimati (done anyway), Nov 30, 03:00 in Los Angeles.
    assert [r.plan.pool for r in run(now=first + timedelta(days=1))] == [los_angeles]
    assert states(kiritimati)[NumberState.RELEASED] == states(los_angeles)[NumberState.RELEASED] == 2


def test_a_second_run_in_the_same_month_removes_nothing_more():
    pool = make_pool(10)
    run()
    # Later the same day more numbers went idle; a retry, a second Beat or a manual run comes.
    PromoNumber.objects.filter(pool=pool).update(last_presented_at=IDLE)
    events = ScalingEvent.objects.count()

    assert run(now=LAST_DAY + timedelta(hours=3)) == []
    assert states(pool) == {NumberState.ACTIVE: 8, NumberState.RELEASED: 2}
    assert ScalingEvent.objects.count() == events and MonthlyPrune.objects.count() == 1


def test_a_skipped_pool_has_one_event_with_its_reason_and_figures():
    pool = make_pool(10, last_overflow_at=LAST_DAY - timedelta(days=29))
    [result] = run()
    run(now=LAST_DAY + timedelta(hours=1))

    assert result.outcome == PruneOutcome.SKIPPED and states(pool) == {NumberState.ACTIVE: 10}
    skipped = ScalingEvent.objects.get(pool=pool, kind=EventKind.PRUNE_SKIPPED)
    assert "overflow presented 29.0 days ago" in skipped.reason
    assert skipped.figures["days_since_overflow"] == 29 and skipped.figures["rotating"] == 10
    assert MonthlyPrune.objects.get(pool=pool).outcome == PruneOutcome.SKIPPED


def test_pools_where_auto_scaling_does_not_apply_are_left_alone():
    make_pool(10, auto_scaling_enabled=False)
    make_pool(10, is_active=False)
    assert run() == [] and not CarrierOrder.objects.exists()


def test_a_dry_run_plans_the_same_and_writes_nothing():
    pool = make_pool(10)
    [planned] = run(dry_run=True)
    assert len(planned.removed) == 2 and states(pool) == {NumberState.ACTIVE: 10}
    assert not MonthlyPrune.objects.exists() and not ScalingEvent.objects.exists()


def test_the_preview_is_what_the_real_run_then_removes():
    pools = [make_pool(10), make_pool(11, idle=3), make_pool(5, min_size=5)]
    previews = {
        pool.pk: {v.number.id for v in pool_prune_preview(pool=pool, now=LAST_DAY).removals} for pool in pools
    }

    removed = {result.plan.pool.pk: {v.number.id for v in result.removed} for result in run()}

    assert removed == previews
    assert [len(previews[pool.pk]) for pool in pools] == [2, 2, 0]
    released = set(PromoNumber.objects.filter(state=NumberState.RELEASED).values_list("pk", flat=True))
    assert released == set().union(*previews.values())


def test_a_run_killed_between_two_pools_finishes_the_same_plan_when_run_again(monkeypatch):
    monkeypatch.setattr(pruning, "APPLY_POOLS", 1)  # one pool per transaction
    first, second = make_pool(10), make_pool(10)
    # Killed right after the first pool's transaction committed, before any carrier call.
    killed = ringpools_prune(now=LAST_DAY, release=None)
    planned = {v.number.id for v in next(killed).removed}
    killed.close()
    assert states(first) == {NumberState.ACTIVE: 8, NumberState.RELEASING: 2}
    # Meanwhile every number of the first pool went idle: a new plan would pick other numbers.
    PromoNumber.objects.filter(pool=first, state=NumberState.ACTIVE).update(last_presented_at=IDLE)

    results = run(now=LAST_DAY + timedelta(minutes=10))

    assert [r.plan.pool for r in results] == [second]
    assert set(first.numbers.filter(state=NumberState.RELEASED).values_list("pk", flat=True)) == planned
    assert states(first) == {NumberState.ACTIVE: 8, NumberState.RELEASED: 2}
    assert states(second) == {NumberState.ACTIVE: 8, NumberState.RELEASED: 2}


def test_a_run_that_crashed_inside_a_pool_s_transaction_left_nothing_and_runs_again():
    pool = make_pool(10)
    crash = mock.patch.object(pruning, "pools_numbers_release_begin", side_effect=RuntimeError("killed"))
    with crash, pytest.raises(RuntimeError):
        run()
    assert not MonthlyPrune.objects.exists() and states(pool) == {NumberState.ACTIVE: 10}
    [result] = run()
    assert len(result.removed) == 2 and states(pool)[NumberState.RELEASED] == 2


def test_a_failed_release_is_retried_and_the_number_never_returns_to_rotation():
    pool = make_pool(5, idle=5)
    carrier = InventoryCarrier(faults={"release": [TransientCarrierError("carrier timed out")]})
    [result] = run(carrier=carrier)
    [gone] = result.removed
    number = PromoNumber.objects.get(pk=gone.number.id)
    assert number.state == NumberState.RELEASING
    order = CarrierOrder.objects.get(number=number)
    assert order.state == OrderState.PENDING and order.last_error == "carrier timed out"

    # Every visitor who comes meanwhile gets one of the four other numbers, then the overflow.
    handed = {
        present_number(pool=handout_pool(pool.key), visitor_id=f"visitor-{i:04d}").number for i in range(6)
    }
    assert str(number.number) not in handed

    carrier_orders_reconcile(carrier=carrier, now=LAST_DAY + timedelta(hours=1))
    number.refresh_from_db()
    assert number.state == NumberState.RELEASED and number.released_at is not None


def test_a_number_leased_when_the_run_comes_stays():
    pool = make_pool(5, idle=5)
    with time_machine.travel(LAST_DAY - timedelta(minutes=5), tick=False):
        leased = present_number(pool=handout_pool(pool.key), visitor_id="visitor-leased")
    [result] = run()
    assert leased.number not in {v.number.label for v in result.removed}
    assert PromoNumber.objects.get(number=leased.number).state == NumberState.ACTIVE


def test_a_number_handed_out_after_the_plan_was_read_is_kept():
    pool = make_pool(10)
    plans = list(
        pruning.prune_plans(
            pools=pruning.pools_for_plans(pool.__class__.objects.filter(pk=pool.pk)), now=LAST_DAY
        )
    )
    first = plans[0].plan.removals[0].number.id
    # A visitor is handed that number between the plan's read and the pool's transaction.
    PromoNumber.objects.filter(pk=first).update(busy_until=LAST_DAY + timedelta(minutes=30))
    with mock.patch.object(pruning, "prune_plans", return_value=iter(plans)):
        [result] = run()
    second = plans[0].plan.removals[1].number.id
    assert [v.number.id for v in result.removed] == [second]
    assert "1 used since the plan was read, kept" in result.reason
    assert PromoNumber.objects.get(pk=first).state == NumberState.ACTIVE
    # The month's record says what really went, not what was planned.
    record = MonthlyPrune.objects.get(pool=pool)
    assert (record.outcome, record.removed, record.figures["removed_ids"]) == (
        PruneOutcome.PRUNED,
        1,
        [second],
    )
    assert "1 used since the plan was read, kept" in record.reason


def test_when_every_planned_number_was_used_since_the_plan_the_pool_is_skipped_with_its_event():
    pool = make_pool(10)
    plans = list(
        pruning.prune_plans(
            pools=pruning.pools_for_plans(pool.__class__.objects.filter(pk=pool.pk)), now=LAST_DAY
        )
    )
    planned = [v.number.id for v in plans[0].plan.removals]
    PromoNumber.objects.filter(pk__in=planned).update(last_presented_at=LAST_DAY - timedelta(minutes=1))
    with mock.patch.object(pruning, "prune_plans", return_value=iter(plans)):
        [result] = run()
    assert result.outcome == PruneOutcome.SKIPPED and result.removed == ()
    record = MonthlyPrune.objects.get(pool=pool)
    assert (record.outcome, record.removed, record.figures["removed_ids"]) == (PruneOutcome.SKIPPED, 0, [])
    assert not CarrierOrder.objects.filter(pool=pool).exists()
    skipped = ScalingEvent.objects.get(pool=pool, kind=EventKind.PRUNE_SKIPPED)
    assert f"{len(planned)} used since the plan was read, kept" in skipped.reason


def test_a_pinned_number_stays_until_it_is_unpinned():
    staff = factories.StaffFactory(username="sam")
    pool = make_pool(5, idle=5)
    plan = pool_prune_preview(pool=pool, now=LAST_DAY)
    target = PromoNumber.objects.get(pk=plan.removals[0].number.id)

    with pytest.raises(ValidationError):
        promo_number_pin(number=target, actor=staff, reason="  ")
    promo_number_pin(number=target, actor=staff, reason="printed on the spring flyer")
    pinned = pool_prune_preview(pool=pool, now=LAST_DAY)
    assert target.pk not in {v.number.id for v in pinned.removals}
    assert next(v for v in pinned.plan.verdicts if v.number.id == target.pk).rule == "pinned"

    promo_number_unpin(number=target, actor=staff, reason="flyer campaign over")
    assert target.pk in {v.number.id for v in pool_prune_preview(pool=pool, now=LAST_DAY).removals}
    events = ScalingEvent.objects.filter(number=target).order_by("id")
    assert [(e.kind, e.actor) for e in events] == [
        (EventKind.NUMBER_PINNED, staff),
        (EventKind.NUMBER_UNPINNED, staff),
    ]
    assert events[0].reason == "pinned: printed on the spring flyer"


def test_the_bill_counts_held_numbers_now_and_forecasts_next_month_after_the_prune():
    pool = make_pool(10)
    PromoNumber.objects.filter(pool=pool).update(monthly_cost=Decimal("1.50"))
    before = account_bill(account=pool.account, now=LAST_DAY)
    assert (before.held, before.held_cost) == (11, Decimal("16.50"))
    assert (before.planned, before.forecast, before.forecast_cost) == (2, 9, Decimal("13.50"))

    carrier = InventoryCarrier(faults={"release": [TransientCarrierError("timeout")] * 2})
    run(carrier=carrier)
    during = account_bill(account=pool.account, now=LAST_DAY)
    # Being released: still billed now, not next month; the month's prune is done.
    assert (during.held, during.releasing, during.planned, during.forecast) == (11, 2, 0, 9)

    carrier_orders_reconcile(carrier=carrier, now=LAST_DAY + timedelta(hours=1))
    after = account_bill(account=pool.account, now=LAST_DAY)
    assert (after.held, after.held_cost, after.forecast_cost) == (9, Decimal("13.50"), Decimal("13.50"))


def test_a_late_caller_to_a_number_released_by_the_prune_still_reaches_the_pool_s_destination(client):
    from tests.ringpools.test_webhook import call_form, post_signed

    pool = make_pool(5, idle=5, account=factories.AccountFactory(carrier_auth_token="test-auth-token"))
    [result] = run()
    [gone] = result.removed
    assert PromoNumber.objects.get(pk=gone.number.id).state == NumberState.RELEASED

    with time_machine.travel(LAST_DAY + timedelta(minutes=10), tick=False):
        response = post_signed(client, call_form(gone.number.label))
    assert response.status_code == 200
    assert f"<Dial>{pool.destination_number.number}</Dial>" in response.content.decode()
