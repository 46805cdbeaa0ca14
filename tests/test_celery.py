"""Celery against the real broker: a worker consumes the product's task from Redis, and Beat's database
scheduler knows when the registered schedule is due."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connections
from django.db.models import Sum

from config.celery import app
from config.schedules import SCHEDULES
from ringpools.models import PoolHourlyFigures
from ringpools.tasks import compact_hourly_figures
from tests.factories import PoolHourlyFiguresFactory, RingPoolFactory


def spread_figures(hour: datetime):
    pool = RingPoolFactory()
    for shard, (presentations, overflows) in enumerate([(10, 1), (20, 2), (30, 3)]):
        PoolHourlyFiguresFactory(
            pool=pool, hour=hour, shard=shard, presentations=presentations, overflows=overflows
        )
    return pool


def totals(pool) -> dict:
    return PoolHourlyFigures.objects.filter(pool=pool).aggregate(p=Sum("presentations"), o=Sum("overflows"))


@pytest.mark.django_db
def test_compaction_folds_finished_hours_and_leaves_the_current_one():
    now = datetime.now(UTC)
    finished = spread_figures(now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2))
    current = spread_figures(now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
    assert compact_hourly_figures() == 2
    assert PoolHourlyFigures.objects.filter(pool=finished).count() == 1
    assert totals(finished) == {"p": 60, "o": 6}
    assert PoolHourlyFigures.objects.filter(pool=current).count() == 3
    assert compact_hourly_figures() == 0  # idempotent


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_task_sent_through_the_redis_broker():
    from celery.contrib.testing.worker import start_worker

    pool = spread_figures(datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3))
    assert app.conf.broker_url.startswith("redis://")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        compact_hourly_figures.delay()
        deadline = time.monotonic() + 30
        while PoolHourlyFigures.objects.filter(pool=pool).count() > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
    # Celery's Django fix-up closes database connections around the worker, the test's own included.
    connections.close_all()
    assert PoolHourlyFigures.objects.filter(pool=pool).count() == 1
    assert totals(pool) == {"p": 60, "o": 6}


@pytest.mark.django_db(transaction=True)  # the scheduler closes connections it finds inside a transaction
def test_beat_finds_the_registered_schedule_due_at_its_minute():
    from django_celery_beat.schedulers import DatabaseScheduler

    call_command("register_schedules", stdout=StringIO())
    schedule = SCHEDULES[0]
    with time_machine.travel(datetime(2026, 11, 30, 13, 6, 50, tzinfo=UTC), tick=False):
        scheduler = DatabaseScheduler(app=app)
        entry = scheduler.schedule[schedule.name]
        entry.last_run_at = datetime(2026, 11, 30, 12, 7, 0, tzinfo=UTC)
        due, _ = entry.is_due()
        assert not due
    with time_machine.travel(datetime(2026, 11, 30, 13, 7, 1, tzinfo=UTC), tick=False):
        due, _ = entry.is_due()
        assert due
    assert entry.task == schedule.task
