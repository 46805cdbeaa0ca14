"""The periodic jobs' advisory locks on PostgreSQL: while another process holds a job's lock the job
does nothing; when that process dies the lock is free again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import time_machine
from django.db import connection

from config.celery import app
from config.locks import JobLock
from ringpools.models import PoolHourlyFigures
from ringpools.tasks import compact_hourly_figures
from scaling.models import MonthlyPrune
from scaling.tasks import prune_ringpools
from tests.factories import AccountFactory, PoolHourlyFiguresFactory, PromoNumberFactory, RingPoolFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def other_process():
    """A connection of its own, as another worker's."""
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        password=settings["PASSWORD"] or None,
        autocommit=True,
    )
    yield other
    if not other.closed:
        other.close()


def spread(hour: datetime):
    pool = RingPoolFactory()
    for shard in range(3):
        PoolHourlyFiguresFactory(pool=pool, hour=hour, shard=shard, presentations=20, overflows=2)
    return pool


def test_compaction_does_nothing_while_another_worker_holds_its_lock(other_process):
    pool = spread(datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2))
    other_process.execute("BEGIN")
    other_process.execute("SELECT pg_advisory_xact_lock(%s)", [int(JobLock.COMPACT_HOURLY_FIGURES)])
    assert compact_hourly_figures() == 0
    assert PoolHourlyFigures.objects.filter(pool=pool).count() == 3
    other_process.execute("ROLLBACK")  # the other worker's transaction ends: the lock with it
    assert compact_hourly_figures() == 2
    assert PoolHourlyFigures.objects.filter(pool=pool).count() == 1


@pytest.fixture
def eager_tasks():
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True  # the releases the prune queues run in-line
    yield
    app.conf.task_always_eager = before


def test_the_prune_does_nothing_while_another_run_holds_its_lock_and_runs_once_the_holder_died(
    other_process, eager_tasks
):
    last_day = datetime(2027, 1, 31, 12, tzinfo=UTC)
    long_ago = last_day - timedelta(days=90)
    with time_machine.travel(last_day, tick=False):
        pool = RingPoolFactory(account=AccountFactory(timezone="UTC"))
        for _ in range(5):
            PromoNumberFactory(pool=pool, acquired_at=long_ago, last_presented_at=long_ago)
        other_process.execute("SELECT pg_advisory_lock(%s)", [int(JobLock.PRUNE_RINGPOOLS)])
        assert prune_ringpools() == 0
        assert not MonthlyPrune.objects.exists()
        other_process.close()  # the holder's process dies: PostgreSQL frees its session lock
        assert prune_ringpools() == 1  # 20% of five idle numbers
        assert MonthlyPrune.objects.filter(pool=pool).count() == 1


def test_the_carrier_slots_bound_calls_at_once_and_a_dead_holders_slot_is_free_again(other_process):
    """RINGPOOL_CARRIER_CONCURRENCY slots across processes: with all held elsewhere a task gets
    none (and waits its turn); the slots of a process that died are free again."""
    from config.locks import carrier_slot

    for slot in range(3):  # another process holds all three slots
        other_process.execute("SELECT pg_advisory_lock(%s, %s)", [int(JobLock.CARRIER_SLOTS), slot])
    with carrier_slot(3) as got_one:
        assert got_one is False
    with carrier_slot(4) as got_one:  # a fourth slot is free, and now held here
        assert got_one is True
        taken = other_process.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", [int(JobLock.CARRIER_SLOTS), 3]
        ).fetchone()
        assert taken == (False,)
    other_process.close()  # the holder dies
    with carrier_slot(3) as got_one:
        assert got_one is True
