"""History kept bounded: leases are deleted their retention after they ended, in batches; calls stay."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from ringpools.models import Call, Lease
from ringpools.retention import RETENTION_FLOOR, lease_retention, leases_purge
from tests import factories

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def lease_ended(ago: timedelta, **fields) -> Lease:
    ended = NOW - ago
    return factories.LeaseFactory(started_at=ended - timedelta(minutes=30), expires_at=ended, **fields)


def test_a_lease_is_kept_until_exactly_its_retention_after_it_ended_then_deleted(settings):
    settings.RINGPOOL_LEASE_RETENTION_DAYS = 90
    at_the_edge = lease_ended(timedelta(days=90))
    just_past = lease_ended(timedelta(days=90, microseconds=1))
    recent = lease_ended(timedelta(days=5))

    report = leases_purge(now=NOW)

    assert report.deleted == 1 and report.before == NOW - timedelta(days=90)
    assert set(Lease.objects.values_list("pk", flat=True)) == {at_the_edge.pk, recent.pk}
    assert not Lease.objects.filter(pk=just_past.pk).exists()


def test_the_retention_is_never_shorter_than_what_the_product_reads_back(settings):
    settings.RINGPOOL_LEASE_RETENTION_DAYS = 7
    assert lease_retention() == RETENTION_FLOOR == timedelta(days=31)
    lease_ended(timedelta(days=30))  # the numbers in use over 30 days still need it
    assert leases_purge(now=NOW).deleted == 0
    settings.RINGPOOL_LEASE_RETENTION_DAYS = 400
    assert lease_retention() == timedelta(days=400)


def test_a_call_keeps_its_record_when_its_lease_is_deleted(settings):
    settings.RINGPOOL_LEASE_RETENTION_DAYS = 90
    old = lease_ended(timedelta(days=120))
    call = Call.objects.create(
        account=old.pool.account,
        pool=old.pool,
        number=old.number,
        lease=old,
        call_sid="CA-old",
        to_number=old.number.number,
        attribution="lease",
        received_at=old.expires_at - timedelta(minutes=1),
    )
    leases_purge(now=NOW)
    call.refresh_from_db()
    assert call.lease is None and call.number == old.number and call.attribution == "lease"


def test_it_deletes_in_batches_oldest_first_and_stops_at_its_budget(settings):
    settings.RINGPOOL_LEASE_RETENTION_DAYS = 90
    number = factories.PromoNumberFactory()
    for day in range(12):
        lease_ended(timedelta(days=200 - day), number=number, pool=number.pool)
    report = leases_purge(now=NOW, batch=5, budget_seconds=0)
    assert report.deleted == 5 and report.batches == 1 and not report.complete
    oldest_left = Lease.objects.order_by("expires_at").first()
    assert oldest_left.expires_at == NOW - timedelta(days=195)
    report = leases_purge(now=NOW, batch=5)
    assert (report.deleted, report.batches, report.complete) == (7, 2, True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_hand_outs_go_on_while_the_purge_deletes_on_postgresql(settings):
    """The purge's short transactions never hold what a claim needs: visitors get numbers throughout."""
    from django.utils import timezone

    from ringpools.handout import present_number
    from ringpools.selectors import handout_pool

    settings.RINGPOOL_LEASE_RETENTION_DAYS = 90
    pool = factories.RingPoolFactory()
    numbers = factories.PromoNumberFactory.create_batch(20, pool=pool)
    ended = timezone.now() - timedelta(days=200)
    Lease.objects.bulk_create(  # a thousand visitors of each number, one after the other
        Lease(
            pool=pool,
            number=numbers[i % 20],
            visitor_id=f"old-{i}",
            started_at=ended - timedelta(minutes=40 * (i // 20) + 30),
            expires_at=ended - timedelta(minutes=40 * (i // 20)),
        )
        for i in range(20_000)
    )
    errors: list[BaseException] = []
    purged = {}

    def purge() -> None:
        try:
            purged["report"] = leases_purge(now=timezone.now(), batch=500)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    purger = threading.Thread(target=purge)
    purger.start()
    kinds = []
    while purger.is_alive() or len(kinds) < 10:  # ten visitors renewing, new ones until they all hold one
        kinds.append(present_number(pool=handout_pool(pool.key), visitor_id=f"v{len(kinds) % 10}").kind)
    purger.join()
    assert errors == []
    assert purged["report"].deleted == 20_000 and purged["report"].batches == 40
    assert set(kinds) == {"promo"}
    assert Lease.objects.count() == 10


def test_the_walk_stops_at_the_first_step_past_the_cutoff_instead_of_reading_the_whole_table(settings):
    """An hourly run with nothing left to delete must cost a few statements, not a scan of months of
    leases: it walks by id from the oldest and stops at the first step that started after the cutoff."""
    from django.test.utils import CaptureQueriesContext

    settings.RINGPOOL_LEASE_RETENTION_DAYS = 90
    number = factories.PromoNumberFactory()
    for day in range(6):
        lease_ended(timedelta(days=200 - day), number=number, pool=number.pool)
    for hour in range(300):  # the retained months, oldest first
        lease_ended(timedelta(days=80, hours=-hour), number=number, pool=number.pool)
    with CaptureQueriesContext(connection) as first:
        assert leases_purge(now=NOW, batch=5).deleted == 6
    with CaptureQueriesContext(connection) as idle:
        assert leases_purge(now=NOW, batch=5).deleted == 0
    assert len(first.captured_queries) < 40 and len(idle.captured_queries) <= 6  # not 60 steps of 5
