"""The hand-out rules of SPEC §3, on both implementations (PostgreSQL statements and portable ORM)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db.models import Sum

from ringpools import handout
from ringpools.choices import NumberRole, OverflowMode, PresentationKind
from ringpools.handout import present_number, release_lease
from ringpools.models import Lease, PoolHourlyFigures, PromoNumber, RingPool
from ringpools.selectors import handout_pool
from tests.factories import PromoNumberFactory, RingPoolFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["database", "orm"])
def implementation(request, monkeypatch) -> str:
    if request.param == "orm":
        monkeypatch.setattr(handout, "steps_for_database", lambda: handout._OrmSteps)
    return request.param


def ask(pool: RingPool, visitor: str, **kwargs):
    return present_number(pool=handout_pool(pool.key), visitor_id=visitor, **kwargs)


def pool_with(size: int, **options) -> RingPool:
    pool = RingPoolFactory(**options)
    for _ in range(size):
        PromoNumberFactory(pool=pool)
    return pool


def test_a_new_visitor_gets_a_promo_number_for_the_lease_length(implementation):
    pool = pool_with(2, lease_seconds=1800)
    with time_machine.travel(T0, tick=False):
        shown = ask(
            pool, "visitor-aaaa", page_url="https://example.com/?utm_source=ad", params={"utm_source": "ad"}
        )
    assert shown.kind == PresentationKind.PROMO
    assert shown.expires_at == T0 + timedelta(minutes=30)
    lease = Lease.objects.get(visitor_id="visitor-aaaa")
    assert str(lease.number.number) == shown.number
    assert lease.params == {"utm_source": "ad"} and lease.page_url == "https://example.com/?utm_source=ad"
    assert lease.number.last_presented_at == T0


def test_the_same_visitor_keeps_the_number_and_the_lease_slides(implementation):
    pool = pool_with(3)
    with time_machine.travel(T0, tick=False):
        first = ask(pool, "visitor-aaaa")
    with time_machine.travel(T0 + timedelta(minutes=29), tick=False):
        again = ask(pool, "visitor-aaaa")
    assert again.number == first.number
    assert again.expires_at == T0 + timedelta(minutes=59)
    assert Lease.objects.filter(visitor_id="visitor-aaaa").count() == 1
    assert PromoNumber.objects.get(number=first.number).last_presented_at == T0 + timedelta(minutes=29)


def test_two_visitors_get_different_numbers(implementation):
    pool = pool_with(2)
    with time_machine.travel(T0, tick=False):
        assert ask(pool, "visitor-aaaa").number != ask(pool, "visitor-bbbb").number


def test_an_expired_lease_frees_the_number_for_the_next_visitor(implementation):
    pool = pool_with(1, lease_seconds=1800)
    with time_machine.travel(T0, tick=False):
        mine = ask(pool, "visitor-aaaa")
        assert ask(pool, "visitor-bbbb").kind != PresentationKind.PROMO
    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        theirs = ask(pool, "visitor-bbbb")
    assert theirs.kind == PresentationKind.PROMO and theirs.number == mine.number


def test_a_visitor_whose_lease_lapsed_cannot_take_the_number_back(implementation):
    pool = pool_with(1)
    with time_machine.travel(T0, tick=False):
        ask(pool, "visitor-aaaa")
    with time_machine.travel(T0 + timedelta(minutes=31), tick=False):
        assert ask(pool, "visitor-bbbb").kind == PresentationKind.PROMO
        assert ask(pool, "visitor-aaaa").kind != PresentationKind.PROMO


def test_the_number_that_rested_longest_is_handed_out_first(implementation):
    pool = RingPoolFactory()
    never_used = PromoNumberFactory(pool=pool)
    freed_early = PromoNumberFactory(pool=pool)
    freed_late = PromoNumberFactory(pool=pool)
    PromoNumber.objects.filter(pk=freed_early.pk).update(busy_until=T0 - timedelta(hours=3))
    PromoNumber.objects.filter(pk=freed_late.pk).update(busy_until=T0 - timedelta(hours=1))
    with time_machine.travel(T0, tick=False):
        order = [ask(pool, f"visitor-{i:04d}").number for i in range(3)]
    assert order == [str(n.number) for n in (never_used, freed_early, freed_late)]


def test_goodbye_frees_the_number_after_a_short_grace_and_it_rests_from_then(implementation):
    pool = pool_with(2)
    with time_machine.travel(T0, tick=False):
        first = ask(pool, "visitor-aaaa").number
        other = ask(pool, "visitor-bbbb").number
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        assert release_lease(pool=handout_pool(pool.key), visitor_id="visitor-bbbb")
    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        assert release_lease(pool=handout_pool(pool.key), visitor_id="visitor-aaaa")
        assert ask(pool, "visitor-cccc").number == other  # its grace is over
        assert ask(pool, "visitor-dddd").kind != PresentationKind.PROMO  # first is still in its grace
    with time_machine.travel(T0 + timedelta(minutes=2) + handout.GOODBYE_GRACE, tick=False):
        assert ask(pool, "visitor-eeee").number == first
    lease = Lease.objects.get(visitor_id="visitor-bbbb")
    assert lease.released_at == T0 + timedelta(minutes=1)
    assert lease.expires_at == T0 + timedelta(minutes=1) + handout.GOODBYE_GRACE


def test_a_visitor_who_comes_back_within_the_grace_keeps_the_number(implementation):
    pool = pool_with(2)
    with time_machine.travel(T0, tick=False):
        mine = ask(pool, "visitor-aaaa").number
        release_lease(pool=handout_pool(pool.key), visitor_id="visitor-aaaa")
    with time_machine.travel(T0 + timedelta(seconds=2), tick=False):
        again = ask(pool, "visitor-aaaa")
    assert again.number == mine and again.expires_at == T0 + timedelta(seconds=2, minutes=30)
    assert Lease.objects.get(visitor_id="visitor-aaaa").released_at is None


def test_overflow_shows_the_pools_overflow_number(implementation):
    pool = pool_with(1, overflow_mode=OverflowMode.OVERFLOW_NUMBER)
    overflow = PromoNumberFactory(pool=pool, role=NumberRole.OVERFLOW)
    with time_machine.travel(T0, tick=False):
        ask(pool, "visitor-aaaa")
        shown = ask(pool, "visitor-bbbb")
    assert (shown.kind, shown.number, shown.expires_at) == (
        PresentationKind.OVERFLOW,
        str(overflow.number),
        None,
    )
    assert PromoNumber.objects.get(pk=overflow.pk).last_presented_at == T0
    assert not Lease.objects.filter(visitor_id="visitor-bbbb").exists()


def test_overflow_shows_the_destination_number_in_destination_mode(implementation):
    pool = pool_with(0, overflow_mode=OverflowMode.DESTINATION_NUMBER)
    PromoNumberFactory(pool=pool, role=NumberRole.OVERFLOW)
    with time_machine.travel(T0, tick=False):
        shown = ask(pool, "visitor-aaaa")
    assert (shown.kind, shown.number) == (PresentationKind.DESTINATION, str(pool.destination_number.number))


def test_overflow_mode_without_an_overflow_number_falls_back_to_the_destination(implementation):
    pool = pool_with(0, overflow_mode=OverflowMode.OVERFLOW_NUMBER)
    with time_machine.travel(T0, tick=False):
        assert ask(pool, "visitor-aaaa").kind == PresentationKind.DESTINATION


def test_every_overflow_marks_the_pool_with_the_time_to_the_second(implementation):
    pool = pool_with(0)
    with time_machine.travel(T0, tick=False):
        ask(pool, "visitor-aaaa")
    assert RingPool.objects.get(pk=pool.pk).last_overflow_at == T0
    with time_machine.travel(T0 + timedelta(milliseconds=300), tick=False):
        ask(pool, "visitor-bbbb")  # same second: the write is coalesced
    assert RingPool.objects.get(pk=pool.pk).last_overflow_at == T0
    with time_machine.travel(T0 + timedelta(seconds=5), tick=False):
        ask(pool, "visitor-cccc")
    assert RingPool.objects.get(pk=pool.pk).last_overflow_at == T0 + timedelta(seconds=5)


def test_hourly_figures_count_presentations_and_overflows_but_not_keepalives(implementation):
    pool = pool_with(1)
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        ask(pool, "visitor-aaaa")
        ask(pool, "visitor-aaaa", keepalive=True)
        ask(pool, "visitor-bbbb")
        ask(pool, "visitor-cccc")
    with time_machine.travel(T0 + timedelta(minutes=70), tick=False):
        ask(pool, "visitor-dddd")
    hours = {
        row["hour"]: (row["p"], row["o"])
        for row in PoolHourlyFigures.objects.filter(pool=pool)
        .values("hour")
        .annotate(p=Sum("presentations"), o=Sum("overflows"))
        .order_by()
    }
    assert hours == {T0: (3, 2), T0 + timedelta(hours=1): (1, 0)}
