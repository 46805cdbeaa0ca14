"""The adaptive policy's rules at their edges (issue 22): a number's renewals, the release at renewal,
the growth (learning a new pool's traffic, regrowing to what it held, a shortage beyond it); and the
Beat task in controlled time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from ringpools.choices import NumberState
from scaling.choices import ScalingPolicy
from scaling.growth.rule import GrowthDecision, GrowthVerdict, adaptive_decision, largest_held, shortage_of
from scaling.pruning.rule import NumberUse, PruneRule, next_renewal, renewal_need, renewal_release_decide
from scaling.tasks import release_at_renewal
from tests import factories

BOUGHT = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 30 days after BOUGHT (February has 28)


def use(**facts) -> NumberUse:
    values = {
        "id": 1,
        "is_overflow_number": False,
        "pinned": False,
        "leased": False,
        "acquired_at": BOUGHT,
        "last_presented_at": NOW - timedelta(days=3),
        "last_called_at": None,
    }
    return NumberUse(**{**values, **facts})


@pytest.mark.parametrize(
    ("now", "renews"),
    [
        (BOUGHT, BOUGHT + timedelta(days=30)),
        (BOUGHT + timedelta(days=30) - timedelta(seconds=1), BOUGHT + timedelta(days=30)),
        (BOUGHT + timedelta(days=30), BOUGHT + timedelta(days=60)),  # renewed at that instant
        (BOUGHT + timedelta(days=365), BOUGHT + timedelta(days=390)),
    ],
)
def test_a_number_renews_every_30_days_from_its_purchase(now, renews):
    assert next_renewal(acquired_at=BOUGHT, now=now) == renews


@pytest.mark.parametrize(
    ("facts", "goes", "rule"),
    [
        ({}, True, PruneRule.UNUSED),
        ({"last_presented_at": NOW - timedelta(days=1)}, False, PruneRule.PRESENTED),  # exactly a day: within
        ({"last_presented_at": NOW - timedelta(days=1, seconds=1)}, True, PruneRule.UNUSED),
        ({"last_called_at": NOW - timedelta(days=1)}, False, PruneRule.CALLED),
        ({"last_called_at": NOW - timedelta(days=1, seconds=1)}, True, PruneRule.UNUSED),
        ({"leased": True}, False, PruneRule.LEASED),
        ({"pinned": True}, False, PruneRule.PINNED),
        ({"is_overflow_number": True}, False, PruneRule.OVERFLOW_NUMBER),
        ({"last_presented_at": None}, True, PruneRule.UNUSED),
    ],
)
def test_a_renewing_number_goes_only_if_nobody_used_it_for_a_day(facts, goes, rule):
    decision = renewal_release_decide(number=use(**facts), now=NOW, size=10, min_size=1, peak_in_use=2)
    assert (decision.goes, decision.rule) == (goes, rule)


@pytest.mark.parametrize(
    ("peak", "need"),
    [
        (0, 1),  # the minimum size
        (1, 4),  # 1 + 3 x sqrt(1)
        (2, 7),  # 2 + ceil(3 x 1.41)
        (20, 34),  # 20 + ceil(3 x 4.47) = 14, more than 15 % (3)
        (47, 68),  # 47 + 21
        (100, 130),  # 100 + 30
        (400, 460),  # 3 x sqrt(400) = 60 = 15 %: the two meet
        (1000, 1150),  # 15 % (150) is more than 3 x sqrt(1000) (95)
    ],
)
def test_the_need_is_the_busiest_hour_plus_15_percent_or_three_square_roots_when_more(peak, need):
    assert renewal_need(peak_in_use=peak, min_size=1) == need


def test_the_pool_keeps_its_need_and_its_minimum_size():
    keeps = renewal_release_decide(number=use(), now=NOW, size=7, min_size=1, peak_in_use=2)  # needs 7
    assert not keeps.goes
    assert (
        "the pool needs 7: its busiest hour in 7 days held 2 at once, plus 5 headroom "
        "(3 times the square root of 2, more than 15% for a pool this small)"
    ) in keeps.reason
    assert renewal_release_decide(number=use(), now=NOW, size=8, min_size=1, peak_in_use=2).goes
    large = renewal_release_decide(number=use(), now=NOW, size=1150, min_size=1, peak_in_use=1000)
    assert not large.goes and "plus 150 headroom (15%)" in large.reason
    assert not renewal_release_decide(number=use(), now=NOW, size=5, min_size=5, peak_in_use=0).goes


ON = NOW - timedelta(days=30)  # the pool was created a month ago: its first week is over
DUE = GrowthDecision(
    GrowthVerdict.GROW, 1, "overflow presented 10 s ago; pace 1 per 5 min", NOW + timedelta(minutes=5)
)


def grown(
    *, turned_away=1, size=10, max_size=1000, on=ON, largest=0, decision=DUE, lease_minutes=30
) -> GrowthDecision:
    return adaptive_decision(
        decision,
        turned_away=turned_away,
        size=size,
        max_size=max_size,
        now=NOW,
        created_at=on,
        largest_recent=largest,
        lease=timedelta(minutes=lease_minutes),
        interval=timedelta(minutes=5),
    )


@pytest.mark.parametrize(
    ("on", "learning"),
    [
        (NOW, True),
        (NOW - timedelta(days=7) + timedelta(seconds=1), True),
        (NOW - timedelta(days=7), False),  # exactly a week after its creation: learnt
    ],
)
def test_in_its_first_week_a_pool_grows_five_an_interval_for_any_visitor_turned_away(on, learning):
    decision = grown(on=on, turned_away=1, size=100)
    if learning:
        assert (decision.verdict, decision.grow_by) == (GrowthVerdict.GROW, 5)
        assert decision.next_allowed_at == NOW + timedelta(minutes=5)
        assert "1 visitor turned away since the last growth, about 6 numbers short" in decision.reason
        assert "(a 30 min lease per 5 min interval each), in the pool's first 7 days" in decision.reason
        assert "it learns its traffic at up to 5 numbers per interval" in decision.reason
    else:  # beyond the 0 it held: 1 turned away is no shortage for a pool of 100 (4 % of it: 4)
        assert (decision.verdict, decision.grow_by) == (GrowthVerdict.WAIT, 0)
    assert grown(on=NOW, size=48, max_size=50).grow_by == 2  # the maximum size still holds
    assert "2 left before the maximum size of 50" in grown(on=NOW, size=48, max_size=50).reason


@pytest.mark.parametrize(
    ("turned_away", "lease_minutes", "grows"),
    [(1, 5, 1), (3, 5, 3), (1, 1, 1), (2, 10, 4), (3, 10, 5), (1, 30, 5), (0, 30, 1)],
)
def test_fast_growth_is_the_numbers_the_visitors_turned_away_were_short_at_most_5(
    turned_away, lease_minutes, grows
):
    # Each visitor turned away would have held a number for its lease: lease / interval numbers short.
    # None turned away (only a waiting visitor's keep-alives): the overflow still counts as one.
    for on, largest in ((NOW, 0), (ON, 100)):  # learning, and regrowing towards 100
        decision = grown(on=on, largest=largest, turned_away=turned_away, lease_minutes=lease_minutes)
        assert (decision.verdict, decision.grow_by) == (GrowthVerdict.GROW, grows)


@pytest.mark.parametrize(("size", "largest", "grows"), [(10, 30, 5), (27, 30, 3), (29, 30, 1)])
def test_below_the_most_it_held_lately_a_pool_regrows_to_it_five_an_interval(size, largest, grows):
    decision = grown(size=size, largest=largest, turned_away=1)
    assert (decision.verdict, decision.grow_by) == (GrowthVerdict.GROW, grows)
    regrows = f"it held {largest} numbers at once in the last 90 days: it regrows towards them"
    assert regrows in decision.reason
    capped = grown(size=10, largest=30, max_size=12)
    assert capped.grow_by == 2 and "2 left before the maximum size of 12" in capped.reason


@pytest.mark.parametrize(
    ("size", "turned_away", "grows"),
    [
        (10, 0, False),  # an overflow shown to a waiting visitor only: nobody more turned away
        (10, 1, True),  # 4 % of 10 is less than one: one visitor is a shortage
        (25, 1, True),  # exactly 1
        (26, 1, False),  # 1.04: two
        (26, 2, True),
        (100, 3, False),
        (100, 4, True),  # exactly 4 %
        (600, 24, True),
        (600, 23, False),
    ],
)
def test_beyond_the_most_it_held_a_pool_grows_at_the_pace_only_for_a_shortage(size, turned_away, grows):
    decision = grown(size=size, largest=size, turned_away=turned_away)
    if grows:
        assert (decision.verdict, decision.grow_by) == (GrowthVerdict.GROW, 1)  # the pace's step
        assert decision.next_allowed_at == NOW + timedelta(minutes=5)  # the pace's next interval
        assert decision.reason.endswith("; pace 1 per 5 min")
        assert f"a shortage beyond the {size} numbers it held at once in the last 90 days" in decision.reason
    else:
        assert (decision.verdict, decision.grow_by, decision.next_allowed_at) == (GrowthVerdict.WAIT, 0, None)
        assert f"grows beyond them for a shortage of {shortage_of(size)} (4% of {size}" in decision.reason


@pytest.mark.parametrize("verdict", [GrowthVerdict.WAIT, GrowthVerdict.CAP, GrowthVerdict.IDLE])
def test_the_pace_still_decides_when(verdict):
    decision = GrowthDecision(verdict, 0, "as the seed's rule says", None)
    assert grown(decision=decision, turned_away=30, on=NOW) is decision


def test_the_most_numbers_held_at_once_counts_a_swap_once_and_forgets_what_left_before():
    since = NOW - timedelta(days=90)
    day = timedelta(days=1)
    spans = [
        (since - 10 * day, None),  # held throughout
        (since - 10 * day, since - day),  # left before the window: not counted
        (since - 5 * day, since + 3 * day),  # held at the window's start, left in it
        (since + 3 * day, None),  # bought the instant the other left: a swap, still 2 at once
        (since + 10 * day, since + 20 * day),  # 3 at once from day 10 to 20
    ]
    assert largest_held(spans, since=since) == 3
    assert largest_held(spans[:4], since=since) == 2
    assert largest_held([], since=since) == 0
    # Released exactly at the window's start: gone before it; a second later: held in it.
    assert largest_held([(since - day, None), (since - day, since)], since=since) == 1
    assert largest_held([(since - day, None), (since - day, since + timedelta(seconds=1))], since=since) == 2
    in_seconds = [(0.0, None), (10.0, 50.0), (50.0, None), (60.0, 70.0)]
    assert largest_held(in_seconds, since=5.0) == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("moment", "released"),
    [
        (BOUGHT + timedelta(days=30, minutes=-15, seconds=-1), 0),  # the renewal is not near yet
        (BOUGHT + timedelta(days=30, minutes=-15), 1),  # exactly the notice before it
        (BOUGHT + timedelta(days=30, seconds=-1), 1),
        (BOUGHT + timedelta(days=30), 0),  # renewed at that instant: the next chance is a month on
    ],
)
def test_beats_task_releases_a_surplus_number_in_the_15_minutes_before_its_renewal(moment, released):
    pool = factories.RingPoolFactory(account=factories.AccountFactory(timezone="Pacific/Auckland"))
    factories.AutoScalingSettingsFactory(account=pool.account, policy=ScalingPolicy.ADAPTIVE)
    for _ in range(2):
        factories.PromoNumberFactory(
            pool=pool, acquired_at=BOUGHT, last_presented_at=BOUGHT + timedelta(days=2)
        )
    with time_machine.travel(moment, tick=False):
        assert release_at_renewal() == released
    assert pool.numbers.filter(state=NumberState.ACTIVE).count() == 2 - released
