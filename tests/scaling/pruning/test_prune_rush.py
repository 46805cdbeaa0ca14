"""A pool that grew in a rush shrinks at month end when its traffic falls back (issue 10): it takes
the hand-out order of SPEC §3.3 (the pool's longest-serving numbers first), built on branch `api`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ringpools.choices import NumberState
from ringpools.handout import present_number
from ringpools.models import PromoNumber
from ringpools.selectors import handout_pool
from scaling.pruning.run import ringpools_prune
from scaling.supply.inventory import InventoryCarrier
from scaling.supply.outbox import carrier_orders_of, carrier_orders_run
from tests import factories

pytestmark = pytest.mark.django_db

RUSH = datetime(2027, 1, 2, 18, 0, tzinfo=UTC)
MONTH_END = datetime(2027, 2, 28, 20, 0, tzinfo=UTC)  # Feb 28, 12:00 in Los Angeles


def test_a_pool_grown_by_a_rush_then_serving_20_visitors_at_a_time_loses_20_percent_at_month_end():
    pool = factories.RingPoolFactory(
        account=factories.AccountFactory(timezone="America/Los_Angeles"), max_size=100, last_overflow_at=RUSH
    )
    for _ in range(100):  # grown to 100 numbers by the rush, all handed out during it
        factories.PromoNumberFactory(pool=pool, acquired_at=RUSH - timedelta(hours=1), last_presented_at=RUSH)
    handout = handout_pool(pool.key)

    # A month of 20 visitors at a time, a new group every 6 hours (each lease ends before the next).
    at, visitor = datetime(2027, 2, 1, tzinfo=UTC), 0
    while at < MONTH_END:
        for _ in range(20):
            visitor += 1
            shown = present_number(pool=handout, visitor_id=f"visitor-{visitor:06d}", now=at)
            assert shown.kind == "promo"
        at += timedelta(hours=6)

    carrier = InventoryCarrier()
    [result] = ringpools_prune(
        now=MONTH_END, release=lambda ids: carrier_orders_run(orders=carrier_orders_of(ids), carrier=carrier)
    )

    assert len(result.removed) == 20
    idle_since = MONTH_END - timedelta(days=5)
    removed = PromoNumber.objects.filter(pk__in=[v.number.id for v in result.removed])
    assert all(number.last_presented_at < idle_since for number in removed)
    assert removed.filter(state=NumberState.RELEASED).count() == 20
