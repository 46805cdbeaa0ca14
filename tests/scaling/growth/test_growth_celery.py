"""The grow job on Celery: registered once for Beat (staff edits survive), sent by Beat's scheduler
through Redis, run by a real worker: the pool has grown."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.celery import app
from ringpools.choices import NumberState
from ringpools.models import RingPool
from scaling.choices import EventKind, OrderState
from scaling.models import CarrierOrder, PoolGrowth, ScalingEvent
from tests import factories

GROW = "Grow RingPools"


def overflowing_pool() -> RingPool:
    pool = factories.RingPoolFactory(area_code="805", max_size=10)
    factories.PromoNumberFactory(pool=pool)
    factories.InventoryNumberFactory()
    PoolGrowth.objects.create(pool=pool, scaling_on_since=timezone.now() - timedelta(minutes=10))
    RingPool.objects.filter(pk=pool.pk).update(last_overflow_at=timezone.now() - timedelta(seconds=30))
    return pool


@pytest.mark.django_db
def test_the_grow_schedule_is_registered_once_and_keeps_staff_edits():
    call_command("register_schedules", stdout=StringIO())
    entry = PeriodicTask.objects.get(name=GROW)
    assert entry.task == "scaling.tasks.grow_ringpools" and entry.crontab.minute == "*"
    entry.enabled = False
    entry.save()
    call_command("register_schedules", stdout=StringIO())
    assert PeriodicTask.objects.filter(name=GROW).count() == 1
    assert PeriodicTask.objects.get(name=GROW).enabled is False


@pytest.mark.django_db(transaction=True)  # the scheduler closes connections it finds inside a transaction
def test_beat_finds_the_grow_pass_due_every_minute():
    from django_celery_beat.schedulers import DatabaseScheduler

    call_command("register_schedules", stdout=StringIO())
    with time_machine.travel(datetime(2026, 11, 30, 13, 6, 50, tzinfo=UTC), tick=False):
        entry = DatabaseScheduler(app=app).schedule[GROW]
        entry.last_run_at = datetime(2026, 11, 30, 13, 6, 0, tzinfo=UTC)
        assert not entry.is_due()[0]
    with time_machine.travel(datetime(2026, 11, 30, 13, 7, 1, tzinfo=UTC), tick=False):
        assert entry.is_due()[0]


@pytest.mark.django_db
def test_the_pass_only_decides_and_queues_and_the_carrier_task_buys(django_capture_on_commit_callbacks):
    from scaling.tasks import grow_ringpools

    pool = overflowing_pool()
    with django_capture_on_commit_callbacks() as sent:
        assert grow_ringpools() == 1
    order = CarrierOrder.objects.get(pool=pool)
    assert order.state == OrderState.PENDING and order.attempts == 0  # decided, not bought yet
    assert pool.numbers.filter(state=NumberState.ACTIVE).count() == 1
    app.conf.task_always_eager = True  # the queued task, run here instead of on a worker
    try:
        for send in sent:
            send()
    finally:
        app.conf.task_always_eager = False
    order.refresh_from_db()
    assert order.state == OrderState.DONE
    assert pool.numbers.filter(state=NumberState.ACTIVE).count() == 2


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_beat_sends_the_grow_task_through_redis_and_a_worker_grows_the_pool():
    from celery.contrib.testing.worker import start_worker
    from django_celery_beat.schedulers import DatabaseScheduler

    assert app.conf.broker_url.startswith("redis://")
    call_command("register_schedules", stdout=StringIO())
    pool = overflowing_pool()
    with start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=20, queues=["celery", "carrier"]
    ):
        scheduler = DatabaseScheduler(app=app)
        scheduler.apply_entry(
            scheduler.schedule[GROW], producer=scheduler.producer
        )  # what Beat does when due
        deadline = time.monotonic() + 30
        while not ScalingEvent.objects.filter(pool=pool, kind=EventKind.NUMBER_ADDED).exists():
            assert time.monotonic() < deadline, "the worker did not grow the pool"
            time.sleep(0.2)
    # Celery's Django fix-up closes database connections around the worker, the test's own included.
    connections.close_all()
    assert pool.numbers.filter(state=NumberState.ACTIVE).count() == 2
