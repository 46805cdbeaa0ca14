"""Hand-out figures on any database: a pool deleted while its counts wait does not stop the others'."""

from __future__ import annotations

import pytest
from django.db.models import Sum
from django.utils import timezone

from ringpools.figures import handout_figures
from ringpools.models import PoolHourlyFigures
from tests.factories import RingPoolFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _buffered(settings):
    settings.RINGPOOL_FIGURES_FLUSH_SECONDS = 60  # flushed by the test, not the background thread
    yield
    handout_figures.stop()


def test_a_pool_deleted_before_the_flush_does_not_hold_back_the_other_pools_figures():
    kept, deleted = RingPoolFactory(), RingPoolFactory()
    now = timezone.now()
    handout_figures.presented(kept.id, now)
    handout_figures.overflowed(kept.id, now, overflow_number_id=None)
    handout_figures.presented(deleted.id, now)
    deleted.delete()
    handout_figures.flush()
    totals = PoolHourlyFigures.objects.filter(pool=kept).aggregate(p=Sum("presentations"), o=Sum("overflows"))
    assert totals == {"p": 2, "o": 1}
    kept.refresh_from_db()
    assert kept.last_overflow_at == now
    handout_figures.presented(kept.id, now)  # and the next flush writes too: nothing was left stuck
    handout_figures.flush()
    assert PoolHourlyFigures.objects.filter(pool=kept).aggregate(p=Sum("presentations"))["p"] == 3
