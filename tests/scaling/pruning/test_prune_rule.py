"""The month-end prune rule (SPEC §7), as a pure function, at the edges of every window and limit."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scaling.pruning.rule import NumberUse, PruneRule, prune_decide, prune_month

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=60)


def number(pk: int, **facts) -> NumberUse:
    defaults = {
        "is_overflow_number": False,
        "pinned": False,
        "leased": False,
        "acquired_at": LONG_AGO,
        "last_presented_at": NOW - timedelta(days=20),
        "last_called_at": None,
    }
    return NumberUse(id=pk, **{**defaults, **facts})


def busy(pk: int) -> NumberUse:
    return number(pk, last_presented_at=NOW - timedelta(hours=1))


def decide(numbers, *, min_size: int = 1, last_overflow_at=None):
    return prune_decide(now=NOW, min_size=min_size, last_overflow_at=last_overflow_at, numbers=numbers)


def fate(plan, pk: int) -> tuple[bool, PruneRule]:
    verdict = next(v for v in plan.verdicts if v.number.id == pk)
    return verdict.goes, verdict.rule


def pool_with(candidate: NumberUse, size: int = 10) -> list[NumberUse]:
    return [candidate, *(busy(pk) for pk in range(100, 100 + size - 1))]


@pytest.mark.parametrize(
    ("presented_ago", "goes"),
    [(timedelta(days=5), False), (timedelta(days=5, seconds=1), True), (None, True)],
    ids=["exactly-5-days-ago-is-recent", "5-days-and-1-second-ago-is-unused", "never-presented"],
)
def test_it_counts_a_number_presented_in_the_past_5_days_as_used(presented_ago, goes):
    at = NOW - presented_ago if presented_ago else None
    plan = decide(pool_with(number(1, last_presented_at=at)))
    assert fate(plan, 1) == (goes, PruneRule.UNUSED if goes else PruneRule.PRESENTED)


@pytest.mark.parametrize(
    ("called_ago", "goes"),
    [(timedelta(days=10), False), (timedelta(days=10, seconds=1), True)],
    ids=["exactly-10-days-ago-is-recent", "10-days-and-1-second-ago-is-unused"],
)
def test_it_counts_a_number_called_in_the_past_10_days_as_used(called_ago, goes):
    plan = decide(pool_with(number(1, last_called_at=NOW - called_ago)))
    assert fate(plan, 1) == (goes, PruneRule.UNUSED if goes else PruneRule.CALLED)


@pytest.mark.parametrize(("overflow_ago", "prunes"), [(29, False), (30, False), (31, True)])
def test_a_pool_that_overflowed_in_the_past_30_days_does_not_scale_down(overflow_ago, prunes):
    plan = decide(pool_with(number(1)), last_overflow_at=NOW - timedelta(days=overflow_ago))
    assert plan.prunes is prunes
    assert fate(plan, 1) == ((True, PruneRule.UNUSED) if prunes else (False, PruneRule.OVERFLOW_RECENT))
    if not prunes:
        assert "within 30 days" in plan.reason and plan.figures["days_since_overflow"] == overflow_ago


@pytest.mark.parametrize(("size", "removed"), [(4, 0), (5, 1), (9, 1), (10, 2), (11, 2)])
def test_at_most_20_percent_of_the_rotating_numbers_go_rounded_down(size, removed):
    plan = decide([number(pk) for pk in range(size)])
    assert len(plan.removals) == removed
    assert plan.figures["cap"] == removed and plan.figures["unused"] == size
    held_back = [v for v in plan.verdicts if v.rule == PruneRule.CAP]
    assert len(held_back) == size - removed
    if removed == 0:
        assert "rounds down to 0" in plan.reason and not plan.prunes


def test_the_longest_unused_go_first():
    numbers = [number(pk, last_presented_at=NOW - timedelta(days=10 + pk)) for pk in range(10)]
    numbers.append(number(50, last_presented_at=None, last_called_at=NOW - timedelta(days=40)))
    plan = decide(numbers)
    assert [v.number.id for v in plan.removals] == [50, 9]


def test_a_number_called_lately_but_not_presented_ranks_by_its_last_call():
    old = number(1, last_presented_at=NOW - timedelta(days=30), last_called_at=NOW - timedelta(days=11))
    older = number(2, last_presented_at=NOW - timedelta(days=25))
    plan = decide([old, older, *(busy(pk) for pk in range(10, 13))])
    assert [v.number.id for v in plan.removals] == [2]


@pytest.mark.parametrize(("min_size", "removed"), [(10, 0), (9, 1), (8, 2), (1, 2)])
def test_it_never_goes_below_the_minimum_size(min_size, removed):
    plan = decide([number(pk) for pk in range(10)], min_size=min_size)
    assert len(plan.removals) == removed
    if removed < 2:
        kept = [v for v in plan.verdicts if not v.goes]
        assert all(v.rule == PruneRule.MIN_SIZE for v in kept)
        assert plan.figures["min_size_hit"] is True


def test_leased_overflow_and_pinned_numbers_are_never_unused():
    idle = {"last_presented_at": NOW - timedelta(days=40)}
    protected = [
        number(1, leased=True, **idle),
        number(2, is_overflow_number=True, **idle),
        number(3, pinned=True, **idle),
    ]
    plan = decide([*protected, *(busy(pk) for pk in range(10, 30))])
    assert plan.removals == []
    assert [fate(plan, pk)[1] for pk in (1, 2, 3)] == [
        PruneRule.LEASED,
        PruneRule.OVERFLOW_NUMBER,
        PruneRule.PINNED,
    ]
    assert plan.reason == "no unused number"


def test_the_overflow_number_does_not_count_towards_the_pool_size():
    numbers = [number(pk) for pk in range(4)] + [number(9, is_overflow_number=True)]
    plan = decide(numbers)
    assert plan.figures["rotating"] == 4 and plan.removals == []


def test_a_number_acquired_less_than_5_days_ago_and_never_presented_stays():
    fresh = number(1, acquired_at=NOW - timedelta(days=2), last_presented_at=None)
    plan = decide(pool_with(fresh))
    assert fate(plan, 1) == (False, PruneRule.NEW)


def test_the_removal_reason_says_how_long_since_presented_and_called():
    plan = decide(pool_with(number(1, last_presented_at=NOW - timedelta(days=12), last_called_at=None)))
    assert plan.removals[0].reason == "unused: presented 12.0 days ago, never called"


@pytest.mark.parametrize(
    ("local_day", "is_last"),
    [
        (date(2027, 2, 28), True),  # 28-day month
        (date(2027, 2, 27), False),
        (date(2028, 2, 28), False),  # leap year: the 29th is the last day
        (date(2028, 2, 29), True),
        (date(2026, 11, 30), True),  # 30-day month
        (date(2026, 11, 29), False),
        (date(2026, 12, 31), True),  # 31-day month
        (date(2026, 12, 30), False),
    ],
)
def test_the_prune_runs_on_the_last_day_of_the_month(local_day, is_last):
    noon = datetime(local_day.year, local_day.month, local_day.day, 12, tzinfo=UTC)
    assert prune_month(now=noon, tz=UTC) == (local_day.replace(day=1) if is_last else None)


def test_the_last_day_is_the_account_s_local_day():
    # 2026-11-30 11:00 UTC is Dec 1, 01:00 at Kiritimati (UTC+14) and Nov 30, 03:00 in Los Angeles.
    instant = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    assert prune_month(now=instant, tz=ZoneInfo("America/Los_Angeles")) == date(2026, 11, 1)
    assert prune_month(now=instant, tz=ZoneInfo("Pacific/Kiritimati")) is None
    # A day earlier, 2026-11-29 11:00 UTC is already Nov 30 at Kiritimati: its last day.
    day_before = instant - timedelta(days=1)
    assert prune_month(now=day_before, tz=ZoneInfo("Pacific/Kiritimati")) == date(2026, 11, 1)
    assert prune_month(now=day_before, tz=ZoneInfo("America/Los_Angeles")) is None
