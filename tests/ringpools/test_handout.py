"""The hand-out rules of SPEC §3, on both implementations (PostgreSQL statements and portable ORM)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db.models import Sum

from ringpools import handout
from ringpools.choices import NumberRole, NumberState, OverflowMode, PresentationKind
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


# What the caller may say of a visitor (hints: the answers must not depend on them). A keep-alive is
# taken as a renewal of a number held: on PostgreSQL the renewal statement runs first.
HINTS = {"plain": {}, "said-new": {"new_visitor": True}, "keepalive": {"keepalive": True}}
hints = pytest.mark.parametrize("hint", list(HINTS))


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


def test_renewals_a_moment_apart_keep_the_lease_as_it_is_but_mark_the_number_presented(implementation):
    pool = pool_with(2, lease_seconds=1800)
    with time_machine.travel(T0, tick=False):
        first = ask(pool, "visitor-aaaa")
    slack = handout.renewal_slack(1800)
    with time_machine.travel(T0 + slack, tick=False):
        kept = ask(pool, "visitor-aaaa", keepalive=True)
    assert (kept.number, kept.expires_at) == (first.number, T0 + timedelta(minutes=30))
    assert Lease.objects.get(visitor_id="visitor-aaaa").expires_at == T0 + timedelta(minutes=30)
    assert PromoNumber.objects.get(number=first.number).last_presented_at == T0 + slack
    with time_machine.travel(T0 + slack + timedelta(seconds=1), tick=False):
        renewed = ask(pool, "visitor-aaaa", keepalive=True)
    assert renewed.expires_at == T0 + slack + timedelta(seconds=1, minutes=30)
    assert Lease.objects.get(visitor_id="visitor-aaaa").expires_at == renewed.expires_at


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


COOLDOWN = timedelta(minutes=15)  # the default: RINGPOOL_LATE_CALL_GRACE_SECONDS


def numbers_serving_since(pool: RingPool, *ages_in_days: int) -> list[PromoNumber]:
    return [PromoNumberFactory(pool=pool, acquired_at=T0 - timedelta(days=age)) for age in ages_in_days]


def last_leased(number: PromoNumber, ended: datetime) -> None:
    """The number's last lease ended at `ended` (as the hand-out leaves it after a lease)."""
    PromoNumber.objects.filter(pk=number.pk).update(busy_until=ended, rested=False)


def test_rested_numbers_go_longest_serving_first_whenever_they_were_last_used(implementation):
    pool = RingPoolFactory()
    newest, oldest, middle = numbers_serving_since(pool, 10, 300, 100)
    last_leased(oldest, T0 - timedelta(hours=1))
    last_leased(middle, T0 - timedelta(days=3))  # rested far longer than the oldest
    with time_machine.travel(T0, tick=False):
        order = [ask(pool, f"visitor-{i:04d}").number for i in range(3)]
    assert order == [str(n.number) for n in (oldest, middle, newest)]


def test_a_number_released_within_the_cooldown_waits_while_a_rested_one_is_free(implementation, settings):
    settings.RINGPOOL_HANDOUT_COOLDOWN_SECONDS = int(COOLDOWN.total_seconds())
    pool = RingPoolFactory()
    longest_serving, rested = numbers_serving_since(pool, 300, 10)
    last_leased(longest_serving, T0 - COOLDOWN + timedelta(seconds=1))
    last_leased(rested, T0 - timedelta(days=1))
    with time_machine.travel(T0, tick=False):
        assert ask(pool, "visitor-aaaa").number == str(rested.number)
        # The only free number left has rested one second short of the cool-down: still handed out.
        assert ask(pool, "visitor-bbbb").number == str(longest_serving.number)


def test_a_number_that_rested_exactly_the_cooldown_counts_as_rested(implementation, settings):
    settings.RINGPOOL_HANDOUT_COOLDOWN_SECONDS = int(COOLDOWN.total_seconds())
    pool = RingPoolFactory()
    longest_serving, newer = numbers_serving_since(pool, 300, 10)
    last_leased(longest_serving, T0 - COOLDOWN)
    last_leased(newer, T0 - timedelta(days=1))
    with time_machine.travel(T0, tick=False):
        assert ask(pool, "visitor-aaaa").number == str(longest_serving.number)


def test_when_no_number_has_rested_the_one_released_longest_ago_goes(implementation):
    pool = RingPoolFactory()
    oldest, early, late = numbers_serving_since(pool, 300, 20, 10)
    last_leased(oldest, T0 - timedelta(minutes=1))
    last_leased(early, T0 - timedelta(minutes=10))
    last_leased(late, T0 - timedelta(minutes=5))
    with time_machine.travel(T0, tick=False):
        order = [ask(pool, f"visitor-{i:04d}").number for i in range(3)]
    assert order == [str(n.number) for n in (early, late, oldest)]


def test_a_pool_serving_a_few_visitors_keeps_its_surplus_idle_and_rests_every_number(implementation):
    """A pool grown to 30 numbers by a rush, then serving 5 visitors at a time for two days: the
    visitors keep to the same few numbers, and no number goes out again within the cool-down of its
    release while rested numbers exist."""
    pool = RingPoolFactory(lease_seconds=1800)
    numbers = numbers_serving_since(pool, *range(60, 30, -1))
    release_of: dict[str, datetime] = {}
    used = set()
    moment, visitor = T0, 0
    while moment < T0 + timedelta(days=2):
        with time_machine.travel(moment, tick=False):
            for _ in range(5):  # five new visitors every 31 minutes: each lease ends before the next round
                visitor += 1
                shown = ask(pool, f"visitor-{visitor:06d}")
                assert shown.kind == PresentationKind.PROMO
                released = release_of.get(shown.number)
                assert released is None or moment - released >= COOLDOWN, (moment, shown.number)
                release_of[shown.number] = shown.expires_at
                used.add(shown.number)
        moment += timedelta(minutes=31)
    # 5 at a time, each resting 30 + 15 minutes after its lease began: 10 numbers take turns.
    assert used == {str(n.number) for n in numbers[:10]}


@hints
def test_a_visitor_whose_number_was_released_gets_a_new_number(implementation, hint):
    pool = pool_with(2)
    with time_machine.travel(T0, tick=False):
        first = ask(pool, "visitor-aaaa").number
    PromoNumber.objects.filter(number=first).update(state=NumberState.RELEASED, released_at=T0)
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        again = ask(pool, "visitor-aaaa", **HINTS[hint])
        assert again.kind == PresentationKind.PROMO and again.number != first
        assert ask(pool, "visitor-aaaa").number == again.number  # and keeps the new one
    live = Lease.objects.filter(visitor_id="visitor-aaaa", expires_at__gt=T0 + timedelta(minutes=1))
    assert [str(lease.number.number) for lease in live] == [again.number]


@pytest.mark.parametrize("moved_to", ["another-pool", "no-pool"])
@hints
def test_a_visitor_whose_number_moved_out_of_the_pool_gets_a_new_number(implementation, moved_to, hint):
    pool = pool_with(2)
    with time_machine.travel(T0, tick=False):
        first = ask(pool, "visitor-aaaa").number
    PromoNumber.objects.filter(number=first).update(
        pool=RingPoolFactory() if moved_to == "another-pool" else None
    )
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        again = ask(pool, "visitor-aaaa", **HINTS[hint])
    assert again.kind == PresentationKind.PROMO and again.number != first


@hints
def test_a_visitor_whose_number_left_service_sees_the_overflow_only_if_none_is_free(implementation, hint):
    pool = pool_with(1)
    with time_machine.travel(T0, tick=False):
        first = ask(pool, "visitor-aaaa").number
    PromoNumber.objects.filter(number=first).update(state=NumberState.RELEASED, released_at=T0)
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        assert ask(pool, "visitor-aaaa", **HINTS[hint]).kind == PresentationKind.DESTINATION
        assert not Lease.objects.filter(expires_at__gt=T0 + timedelta(minutes=1)).exists()


@pytest.mark.parametrize("free", [True, False], ids=["a-number-free", "exhausted"])
def test_a_keepalive_of_a_visitor_whose_lease_lapsed_claims_a_free_number_or_sees_the_overflow(
    implementation, free
):
    """The tag renews a number whose lease ran out (a laptop woken from sleep): a new number if one
    is free, the overflow only if none is. Either way a number is shown, and counted as presented."""
    pool = pool_with(2 if free else 1)
    with time_machine.travel(T0, tick=False):
        ask(pool, "visitor-aaaa")
    with time_machine.travel(T0 + timedelta(minutes=31), tick=False):
        theirs = ask(pool, "visitor-bbbb")  # the number aaaa held, or the other one
        shown = ask(pool, "visitor-aaaa", keepalive=True)
    assert theirs.kind == PresentationKind.PROMO
    if free:
        assert shown.kind == PresentationKind.PROMO and shown.claimed and shown.number != theirs.number
    else:
        assert shown.kind == PresentationKind.DESTINATION
    assert Lease.objects.filter(visitor_id="visitor-aaaa").count() == (2 if free else 1)
    totals = PoolHourlyFigures.objects.filter(pool=pool).aggregate(p=Sum("presentations"), o=Sum("overflows"))
    assert totals == {"p": 3, "o": 0 if free else 1}


def test_a_visitor_said_to_be_new_gets_a_number_like_any_new_visitor(implementation):
    pool = pool_with(2, lease_seconds=1800)
    with time_machine.travel(T0, tick=False):
        shown = ask(
            pool, "visitor-aaaa", new_visitor=True, page_url="https://example.com/?a=1", params={"a": "1"}
        )
    assert shown.kind == PresentationKind.PROMO and shown.claimed
    assert shown.expires_at == T0 + timedelta(minutes=30)
    lease = Lease.objects.get(visitor_id="visitor-aaaa")
    assert str(lease.number.number) == shown.number and lease.params == {"a": "1"}
    assert lease.number.last_presented_at == T0


def test_a_visitor_wrongly_said_to_be_new_keeps_the_number_it_holds(implementation):
    """The hint is only a hint: a visitor who holds a number keeps it, even in a pool with no other
    free number (no false overflow), and never holds two."""
    pool = pool_with(1)
    with time_machine.travel(T0, tick=False):
        mine = ask(pool, "visitor-aaaa").number
    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        again = ask(pool, "visitor-aaaa", new_visitor=True)
    assert again.kind == PresentationKind.PROMO and again.number == mine and not again.claimed
    other = pool_with(3)
    with time_machine.travel(T0, tick=False):
        theirs = ask(other, "visitor-bbbb").number
        assert ask(other, "visitor-bbbb", new_visitor=True).number == theirs
    assert Lease.objects.filter(visitor_id="visitor-bbbb").count() == 1
    assert PoolHourlyFigures.objects.aggregate(o=Sum("overflows"))["o"] == 0


@pytest.mark.postgres
@hints
def test_the_apis_words_choose_the_statement(client, settings, hint):
    """What the tag says is what the database runs: the claim alone for a new visitor's id, the
    renewal alone for a keep-alive (the cheaper statements), the whole hand-out otherwise. The test
    client shares this connection."""
    from django.db import connection

    from ringpools.handout_steps import CLAIM_SQL, HOLD_SQL, RENEW_SQL

    settings.RINGPOOL_RATE_LIMIT_URL = "off"
    pool = pool_with(2)
    url = f"/api/v1/ringpools/{pool.key}/numbers"

    def shape(text: str) -> str:  # as sent ($1) or as written (%(p)s): the same statement
        return re.sub(r"%\(\w\)s|\$\d+", "?", text)

    def runs() -> dict[str, int]:
        sql = "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements"
        return {shape(text): count for text, count in connection.connection.execute(sql).fetchall()}

    assert (
        client.post(url, {"visitor_id": "visitor-aaaa"}, content_type="application/json").status_code == 200
    )
    before = runs()
    body = {"visitor_id": "visitor-bbbb" if hint == "said-new" else "visitor-aaaa", **HINTS[hint]}
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 200 and response.json()["kind"] == "promo"
    ran = {text for text, count in runs().items() if count > before.get(text, 0)}
    assert ran == {shape({"plain": HOLD_SQL, "said-new": CLAIM_SQL, "keepalive": RENEW_SQL}[hint])}


def test_a_visitor_wrongly_said_to_be_new_locks_and_writes_no_other_number(implementation, settings):
    """The hint of a visitor who holds a number costs one lookup: no claim is tried, so no free
    number is locked away from other visitors and none is touched (here: none flagged rested)."""
    pool = pool_with(1)
    with time_machine.travel(T0, tick=False):
        mine = ask(pool, "visitor-aaaa").number
    long_ago = T0 - timedelta(seconds=settings.RINGPOOL_HANDOUT_COOLDOWN_SECONDS + 60)
    resting = [PromoNumberFactory(pool=pool, busy_until=long_ago, rested=False) for _ in range(2)]
    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        assert ask(pool, "visitor-aaaa", new_visitor=True).number == mine
    for number in resting:  # a claim tried would have flagged the one it did not pick
        number.refresh_from_db()
        assert number.rested is False and number.busy_until == long_ago


def test_a_new_visitor_of_an_exhausted_pool_sees_the_overflow(implementation):
    pool = pool_with(1)
    with time_machine.travel(T0, tick=False):
        ask(pool, "visitor-aaaa")
        shown = ask(pool, "visitor-bbbb", new_visitor=True)
    assert shown.kind == PresentationKind.DESTINATION
    assert PoolHourlyFigures.objects.aggregate(o=Sum("overflows"))["o"] == 1


@hints
def test_a_claim_the_caller_may_not_make_is_refused_and_changes_nothing(implementation, hint):
    pool = pool_with(2)
    with time_machine.travel(T0, tick=False):
        mine = ask(pool, "visitor-aaaa")
        with pytest.raises(handout.ClaimRefused):
            ask(pool, "visitor-bbbb", may_claim=False, **HINTS[hint])
        # A visitor who holds a number keeps renewing it.
        assert ask(pool, "visitor-aaaa", may_claim=False, **HINTS[hint]).number == mine.number
    assert list(Lease.objects.values_list("visitor_id", flat=True)) == ["visitor-aaaa"]
    assert PoolHourlyFigures.objects.aggregate(o=Sum("overflows"))["o"] == 0


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


def test_every_overflow_marks_the_pool_and_the_overflow_number_with_its_time(implementation):
    pool = pool_with(0)
    overflow = PromoNumberFactory(pool=pool, role=NumberRole.OVERFLOW)
    for moment in (T0, T0 + timedelta(milliseconds=300), T0 + timedelta(seconds=5)):
        with time_machine.travel(moment, tick=False):
            ask(pool, f"visitor-{moment.microsecond:06d}-{moment.second}")
        assert RingPool.objects.get(pk=pool.pk).last_overflow_at == moment
        assert PromoNumber.objects.get(pk=overflow.pk).last_presented_at == moment


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


def test_a_visitor_kept_in_overflow_counts_each_overflow_shown_and_never_more_than_presentations(
    implementation,
):
    pool = pool_with(1)
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        ask(pool, "visitor-aaaa")  # holds the only number
        ask(pool, "visitor-bbbb")  # overflow
        for _ in range(3):
            ask(pool, "visitor-bbbb", keepalive=True)  # the tag renewing: still shown the overflow
    totals = PoolHourlyFigures.objects.filter(pool=pool).aggregate(p=Sum("presentations"), o=Sum("overflows"))
    assert totals == {"p": 5, "o": 4}
