"""The month-end prune's Beat entry, as registered, really fires on each account's last local day of a
28-, 29-, 30- and 31-day month — through django-celery-beat's own database scheduler (whose crontab
loading has time-window quirks) — and the task it runs prunes each pool once that month."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command

from config.celery import app
from config.schedules import SCHEDULES
from ringpools.choices import NumberState
from scaling.models import MonthlyPrune
from scaling.tasks import prune_ringpools
from tests import factories

PRUNE = next(schedule for schedule in SCHEDULES if schedule.task == "scaling.tasks.prune_ringpools")
ZONES = ("Pacific/Kiritimati", "Asia/Kathmandu", "UTC", "America/Los_Angeles", "Pacific/Pago_Pago")


def hours_until_the_2nd_noon(start: datetime, month_end: date) -> int:
    """Hours from `start` to noon UTC on the 2nd of the next month (past every zone's last day)."""
    second = datetime(month_end.year, month_end.month, month_end.day, 12, tzinfo=UTC) + timedelta(days=2)
    return int((second - start).total_seconds() // 3600)


def idle_pools(month_end: date) -> dict[str, object]:
    long_ago = datetime(month_end.year, month_end.month, 1, tzinfo=UTC) - timedelta(days=60)
    pools = {}
    for zone in ZONES:
        pool = factories.RingPoolFactory(account=factories.AccountFactory(timezone=zone))
        for _ in range(5):
            factories.PromoNumberFactory(pool=pool, acquired_at=long_ago, last_presented_at=long_ago)
        pools[zone] = pool
    return pools


@pytest.fixture
def eager_tasks():
    """The releases the prune queues run in-line (the broker is not what this test is about)."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.mark.django_db(transaction=True)  # the scheduler closes connections it finds inside a transaction
@pytest.mark.parametrize(
    "month_end",
    [date(2027, 2, 28), date(2028, 2, 29), date(2027, 4, 30), date(2027, 1, 31)],
    ids=["28-day", "29-day", "30-day", "31-day"],
)
def test_the_registered_schedule_prunes_every_time_zone_on_its_last_day(month_end, eager_tasks):
    from django_celery_beat.schedulers import DatabaseScheduler

    start = datetime(month_end.year, month_end.month, 26, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        pools = idle_pools(month_end)
        call_command("register_schedules", stdout=StringIO())
        scheduler = DatabaseScheduler(app=app)
        last_run, fired = start, []
        # Beat wakes every 15 minutes from the 26th to noon on the 2nd of the next month.
        for tick in range(0, (hours_until_the_2nd_noon(start, month_end)) * 4):
            now = start + timedelta(minutes=15 * tick)
            clock.move_to(now)
            entry = scheduler.all_as_schedule().get(PRUNE.name)
            assert entry is not None, f"Beat did not load the prune entry at {now}"
            entry.last_run_at = last_run
            if entry.is_due().is_due:
                fired.append(now)
                last_run = now
                prune_ringpools()

    assert fired and {at.day for at in fired} <= {27, 28, 29, 30, 31, 1}
    assert all(at.minute == 15 for at in fired)
    for zone, pool in pools.items():
        record = MonthlyPrune.objects.get(pool=pool)
        local_day = record.decided_at.astimezone(ZoneInfo(zone)).date()
        assert (record.month, local_day) == (month_end.replace(day=1), month_end), zone
        assert pool.numbers.filter(state=NumberState.RELEASED).count() == 1, zone
