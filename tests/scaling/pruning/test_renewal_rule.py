"""The adaptive policy's rules at their edges (issue 22): a number's renewals, the release at renewal,
the growth sized to the visitors turned away; and the Beat task in controlled time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from ringpools.choices import NumberState
from scaling.choices import ScalingPolicy
from scaling.growth.rule import GrowthDecision, GrowthVerdict, adaptive_decision, turned_away_grow_by
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


@pytest.mark.parametrize(("peak", "need"), [(0, 1), (1, 2), (2, 3), (20, 23), (47, 55), (100, 115)])
def test_the_need_is_the_busiest_hour_plus_15_percent_rounded_up(peak, need):
    assert renewal_need(peak_in_use=peak, min_size=1) == need


def test_the_pool_keeps_its_need_and_its_minimum_size():
    keeps = renewal_release_decide(number=use(), now=NOW, size=3, min_size=1, peak_in_use=2)  # needs 3
    assert not keeps.goes and "the pool needs 3: its busiest hour in 7 days held 2 at once" in keeps.reason
    assert renewal_release_decide(number=use(), now=NOW, size=4, min_size=1, peak_in_use=2).goes
    assert not renewal_release_decide(number=use(), now=NOW, size=5, min_size=5, peak_in_use=0).goes


@pytest.mark.parametrize(
    ("turned_away", "size", "room", "grows"),
    [
        (0, 10, 40, 1),
        (3, 10, 40, 3),
        (5, 100, 40, 5),
        (6, 100, 40, 5),
        (9, 600, 40, 5),
        (9, 600, 2, 2),
        (9, 10, 0, 0),
    ],
)
def test_adaptive_growth_is_one_per_visitor_turned_away_at_most_5_an_interval(turned_away, size, room, grows):
    assert turned_away_grow_by(turned_away=turned_away, size=size, room=room) == grows


@pytest.mark.parametrize("verdict", [GrowthVerdict.WAIT, GrowthVerdict.CAP, GrowthVerdict.IDLE])
def test_the_pace_still_decides_when(verdict):
    decision = GrowthDecision(verdict, 0, "as the seed's rule says", None)
    assert adaptive_decision(decision, turned_away=30, size=10, max_size=50) is decision


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
