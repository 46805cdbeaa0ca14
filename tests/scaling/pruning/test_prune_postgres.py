"""The month-end prune under real concurrency on PostgreSQL: two runs at once, and visitors asking for
numbers while a run takes numbers out of rotation (each thread on its own connection)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from ringpools.choices import NumberRole, NumberState
from ringpools.handout import present_number
from ringpools.models import Lease, PromoNumber
from ringpools.selectors import handout_pool
from scaling.choices import EventKind
from scaling.models import CarrierOrder, MonthlyPrune, ScalingEvent
from scaling.pruning.run import ringpools_prune
from scaling.services import pool_number_remove
from scaling.supply.inventory import InventoryCarrier
from scaling.supply.outbox import carrier_orders_of, carrier_orders_run
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LAST_DAY = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # Nov 30, 12:00 in Los Angeles
ATTEMPTS = 8


def idle_pool(size: int = 10):
    pool = factories.RingPoolFactory(account=factories.AccountFactory(timezone="America/Los_Angeles"))
    # The first numbers are the longest unused, and the first the hand-out gives: the run and the
    # visitors want the same numbers.
    for position in range(size):
        factories.PromoNumberFactory(
            pool=pool,
            acquired_at=LAST_DAY - timedelta(days=90),
            last_presented_at=LAST_DAY - timedelta(days=20 + size - position),
        )
    return pool


def together(*jobs) -> list[BaseException]:
    """Run the jobs at the same instant, each in a thread with its own database connection."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def wrap(job) -> None:
        try:
            barrier.wait()
            job()
        except BaseException as error:  # reported to the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrap, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def prune_job():
    carrier = InventoryCarrier()
    list(
        ringpools_prune(
            now=LAST_DAY,
            release=lambda ids: carrier_orders_run(
                orders=carrier_orders_of(ids), carrier=carrier, now=LAST_DAY
            ),
        )
    )


def test_two_runs_at_once_decide_each_pool_once_and_remove_the_20_percent_once():
    for attempt in range(ATTEMPTS):
        pools = [idle_pool(10) for _ in range(3)]
        assert together(prune_job, prune_job) == []
        for pool in pools:
            assert MonthlyPrune.objects.filter(pool=pool).count() == 1, attempt
            assert pool.numbers.exclude(state=NumberState.ACTIVE).count() == 2, attempt
            assert ScalingEvent.objects.filter(pool=pool, kind=EventKind.NUMBER_REMOVED).count() == 2, attempt
            assert CarrierOrder.objects.filter(pool=pool).count() == 2, attempt


def test_no_visitor_is_handed_a_number_the_run_takes_out_of_rotation():
    for attempt in range(ATTEMPTS):
        pool = idle_pool(10)
        handout = handout_pool(pool.key)

        def visitors(handout=handout, attempt=attempt) -> None:
            for i in range(8):
                present_number(pool=handout, visitor_id=f"v-{attempt}-{i:04d}", now=LAST_DAY)

        assert together(prune_job, visitors) == []
        removed = pool.numbers.exclude(state=NumberState.ACTIVE)
        assert removed.count() <= 2, attempt
        # A number the run removed was never handed to a visitor at the run's moment, and every
        # number a visitor holds is still active.
        assert not Lease.objects.filter(number__in=removed, expires_at__gt=LAST_DAY).exists(), attempt
        held = Lease.objects.filter(pool=pool, expires_at__gt=LAST_DAY).values_list(
            "number__state", flat=True
        )
        assert set(held) <= {NumberState.ACTIVE}, attempt
        # The month's record says what went, numbers a visitor took meanwhile left out.
        record = MonthlyPrune.objects.get(pool=pool)
        assert record.removed == removed.count(), attempt
        assert sorted(record.figures["removed_ids"]) == sorted(removed.values_list("pk", flat=True)), attempt


def test_a_manual_removal_works_on_postgresql():
    pool = idle_pool(3)
    number = pool.numbers.filter(role=NumberRole.ROTATING).first()
    removed = pool_number_remove(number=number, trigger="manual", reason="staff", carrier=InventoryCarrier())
    assert removed.state == NumberState.RELEASED
    assert PromoNumber.objects.filter(pool=pool, state=NumberState.ACTIVE).count() == 2
