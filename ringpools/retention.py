"""History kept bounded: leases deleted some time after they ended, in small batches.

A lease is who was shown which number, on which page with which parameters: visitor data, and the
table the hot path writes (a third of a billion rows a year at a million visitors a day). Each is kept
`RINGPOOL_LEASE_RETENTION_DAYS` after it ended (default 90: a quarter's attribution), never less than
what the product reads back — the numbers in use over the last 30 days, the late-call grace — and
then deleted by the periodic task, a few thousand rows per short transaction, number by number, so
the hand-out's claims never wait on it. A call keeps its own record (number, time, attribution); its link
to the deleted lease is cleared. Hourly figures are compacted, not deleted (ringpools/figures.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from ringpools.models import Call, Lease, PromoNumber

# The longest look-back of any reader of leases: the numbers in use over 30 days, plus a day.
RETENTION_FLOOR = timedelta(days=31)
BATCH = 5000
NUMBERS_PER_STEP = 500


def lease_retention() -> timedelta:
    """How long a lease is kept after it ended: the setting, never below what the product reads."""
    configured = timedelta(days=settings.RINGPOOL_LEASE_RETENTION_DAYS)
    grace = timedelta(seconds=settings.RINGPOOL_LATE_CALL_GRACE_SECONDS)
    return max(configured, RETENTION_FLOOR, grace)


@dataclass
class PurgeReport:
    before: datetime
    deleted: int = 0
    batches: int = 0
    seconds: float = 0.0
    complete: bool = True  # False when it stopped at its time budget with old leases left


def leases_purge(*, now: datetime, batch: int = BATCH, budget_seconds: float = 240.0) -> PurgeReport:
    """Delete leases that ended before now - retention, at most `batch` per short transaction;
    stops after `budget_seconds` (the next run goes on).

    It goes number by number (NUMBERS_PER_STEP at a time) through the index the hand-out keeps on
    (number, started_at): a number's old leases are the start of its range, so a step reads what it
    deletes and a probe per number, never the months of leases kept — whatever order the leases were
    written in (history back-filled by an import or the demo included)."""
    report = PurgeReport(before=now - lease_retention())
    started = time.monotonic()
    lease_table = connection.ops.quote_name(Lease._meta.db_table)
    numbers = PromoNumber.objects.order_by("pk").values_list("pk", flat=True)
    after = 0
    while chunk := list(numbers.filter(pk__gt=after)[:NUMBERS_PER_STEP]):
        old = Lease.objects.filter(
            number_id__in=chunk, started_at__lt=report.before, expires_at__lt=report.before
        ).order_by("number_id", "started_at")  # the index's order: each number's oldest first
        while True:
            with transaction.atomic():
                ids = list(old.values_list("pk", flat=True)[:batch])
                if not ids:
                    break
                Call.objects.filter(lease_id__in=ids).update(lease=None)
                with connection.cursor() as cursor:
                    # The rows only: nothing else points at a lease (calls were unlinked just above).
                    placeholders = ", ".join(["%s"] * len(ids))
                    cursor.execute(f"DELETE FROM {lease_table} WHERE id IN ({placeholders})", ids)
                    report.deleted += cursor.rowcount
            report.batches += 1
            if time.monotonic() - started > budget_seconds:
                report.complete = False  # the next run goes on
                report.seconds = time.monotonic() - started
                return report
            if len(ids) < batch:
                break
        after = chunk[-1]
    report.seconds = time.monotonic() - started
    return report
