"""The grow rule on its own (SPEC §6, the seed article): plain facts in, a decision and its reason out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scaling.choices import GrowthMode
from scaling.growth.rule import PASS_SLACK, GrowthPace, GrowthVerdict, growth_decide, growth_step_size

T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
ON = T0 - timedelta(days=1)
DEFAULT = GrowthPace()


def decide(**facts):
    base = {
        "last_overflow_at": T0,
        "last_grown_at": None,
        "scaling_on_since": ON,
        "size": 5,
        "max_size": 50,
        "pace": DEFAULT,
        "now": T0 + timedelta(seconds=30),
    }
    return growth_decide(**{**base, **facts})


def test_an_overflow_since_auto_scaling_was_turned_on_grows_the_pool_by_one():
    decision = decide()
    assert decision.verdict == GrowthVerdict.GROW and decision.grow_by == 1
    assert "overflow presented 30 s ago since auto-scaling was turned on" in decision.reason
    assert "pace 1 per 5 min" in decision.reason


def test_no_overflow_no_growth():
    decision = decide(last_overflow_at=None)
    assert decision.verdict == GrowthVerdict.IDLE and decision.grow_by == 0


def test_an_overflow_from_before_auto_scaling_was_turned_on_does_not_count():
    decision = decide(scaling_on_since=T0 + timedelta(seconds=1))
    assert decision.verdict == GrowthVerdict.IDLE
    assert decision.reason == "no overflow since auto-scaling was turned on"


def test_a_pool_auto_scaling_is_not_on_for_never_grows():
    assert decide(scaling_on_since=None).verdict == GrowthVerdict.IDLE


def test_an_overflow_before_the_last_growth_does_not_earn_another_number():
    decision = decide(last_grown_at=T0 + timedelta(seconds=5), now=T0 + timedelta(minutes=10))
    assert decision.verdict == GrowthVerdict.IDLE
    assert "no overflow since the last growth" in decision.reason


@pytest.mark.parametrize(
    ("since_growth", "verdict"),
    [
        (timedelta(minutes=4, seconds=49), GrowthVerdict.WAIT),
        (timedelta(minutes=5) - PASS_SLACK, GrowthVerdict.GROW),  # Beat a little early still counts
        (timedelta(minutes=5), GrowthVerdict.GROW),
    ],
)
def test_one_number_per_five_minutes_at_most(since_growth, verdict):
    grown = T0
    decision = decide(
        last_grown_at=grown, last_overflow_at=grown + timedelta(seconds=1), now=grown + since_growth
    )
    assert decision.verdict == verdict
    if verdict == GrowthVerdict.WAIT:
        assert decision.next_allowed_at == grown + timedelta(minutes=5)


def test_the_pace_is_the_accounts():
    pace = GrowthPace(step=3, interval=timedelta(minutes=2))
    grown = T0
    decision = decide(
        last_grown_at=grown,
        last_overflow_at=grown + timedelta(seconds=1),
        pace=pace,
        now=grown + timedelta(minutes=2),
    )
    assert decision.verdict == GrowthVerdict.GROW and decision.grow_by == 3
    assert "pace 3 per 2 min" in decision.reason


@pytest.mark.parametrize(
    ("size", "grows_by"),
    [(0, 1), (1, 1), (9, 1), (10, 1), (11, 2), (20, 2), (21, 3), (50, 5), (51, 5), (400, 5)],
)
def test_percentage_mode_rounds_up_at_least_one_and_caps(size, grows_by):
    pace = GrowthPace(mode=GrowthMode.PERCENTAGE, percent=10, cap_per_interval=5)
    assert growth_step_size(size=size, pace=pace) == grows_by
    decision = decide(size=size, max_size=1000, pace=pace)
    assert decision.grow_by == grows_by
    assert "10% of the pool per 5 min, at most 5" in decision.reason


def test_never_past_the_maximum_size():
    decision = decide(size=48, max_size=50, pace=GrowthPace(step=5))
    assert decision.verdict == GrowthVerdict.GROW and decision.grow_by == 2
    assert "5 due, 2 left before the maximum size of 50" in decision.reason


def test_an_overflow_at_the_maximum_size_is_a_cap_not_a_growth():
    decision = decide(size=50, max_size=50)
    assert decision.verdict == GrowthVerdict.CAP and decision.grow_by == 0
    assert "maximum size of 50" in decision.reason


def test_while_a_failed_purchase_waits_for_its_retry_no_more_growth_is_decided():
    retry = T0 + timedelta(minutes=2)
    assert decide(retry_at=retry).verdict == GrowthVerdict.WAIT
    # Still waiting once the retry time is past: the retry itself is the growth that was due.
    assert decide(retry_at=retry, now=retry + timedelta(minutes=10)).verdict == GrowthVerdict.WAIT
    assert "retried in 1 min 30 s" in decide(retry_at=retry).reason
    assert (
        "retried 8 min 30 s ago"
        in decide(retry_at=retry, now=retry + timedelta(minutes=8, seconds=30)).reason
    )
    assert decide(retry_at=None).verdict == GrowthVerdict.GROW


def test_the_edges_of_what_counts_as_an_overflow_since():
    # An overflow at the very moment auto-scaling was seen on counts; one at the moment of the last
    # growth does not (the number bought then was not there for that visitor, but the growth answered it).
    assert decide(scaling_on_since=T0).verdict == GrowthVerdict.GROW
    grown_then = decide(last_grown_at=T0, now=T0 + timedelta(minutes=10))
    assert grown_then.verdict == GrowthVerdict.IDLE
    later = decide(
        last_grown_at=T0, last_overflow_at=T0 + timedelta(microseconds=1), now=T0 + timedelta(minutes=10)
    )
    assert later.verdict == GrowthVerdict.GROW


@pytest.mark.parametrize(
    "grown_before, words",
    [
        (timedelta(minutes=5), "after the last growth 5 min 30 s ago"),
        (timedelta(hours=2), "after the last growth 2 h ago"),
        (timedelta(days=1, hours=3, minutes=20), "after the last growth 1 day 3 h ago"),
        (timedelta(days=12), "after the last growth 12 days ago"),
    ],
)
def test_reasons_say_when_relative_to_the_decision_never_as_a_clock_time(grown_before, words):
    """Issue 21: a reason is read in pages of any time zone; a clock time in it would be in one zone."""
    decision = decide(last_grown_at=T0 - grown_before)
    assert decision.verdict == GrowthVerdict.GROW and words in decision.reason
    waiting = decide(last_grown_at=T0 - timedelta(seconds=10), now=T0 + timedelta(seconds=20))
    assert "grew 30 s ago, pace 1 per 5 min" in waiting.reason
    for reason in (
        decision.reason,
        waiting.reason,
        decide(last_overflow_at=T0 - timedelta(hours=1), last_grown_at=T0).reason,
    ):
        assert "UTC" not in reason and "2026" not in reason and ":" not in reason


@pytest.mark.parametrize(
    "seconds, words",
    [
        (0, "just now"),
        (45, "45 s ago"),
        (60, "1 min ago"),
        (190, "3 min 10 s ago"),
        (3600, "1 h ago"),
        (7500, "2 h 5 min ago"),
        (86400, "1 day ago"),
        (97200 + 86400, "2 days 3 h ago"),
        (-240, "in 4 min"),
    ],
)
def test_moments_in_words_relative_to_now(seconds, words):
    from scaling.spans import ago

    assert ago(T0 - timedelta(seconds=seconds), T0) == words
