"""History kept bounded: leases deleted some time after they ended, in small batches.

A lease is who was shown which number, on which page with which parameters: visitor data, and the
table the hot path writes (a third of a billion rows a year at a million visitors a day). Each is kept
`RINGPOOL_LEASE_RETENTION_DAYS` after it ended (default 90: a quarter's attribution), never less than
what the product reads back — the numbers in use over the last 30 days, the late-call grace — and
then deleted by the periodic task, a few thousand rows per short transaction, oldest first, so the
hand-out's claims never wait on it. A call keeps its own record (number, time, attribution); its link
to the deleted lease is cleared. Hourly figures are compacted, not deleted (ringpools/figures.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from ringpools.models import Call, Lease

# The longest look-back of any reader of leases: the numbers in use over 30 days, plus a day.
RETENTION_FLOOR = timedelta(days=31)
BATCH = 5000


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
    """Delete leases that ended before now - retention, oldest first, each step its own short
    transaction; stops after `budget_seconds` (the next run goes on).

    It walks the table by id, `batch` ids a step (an index range scan, never a scan of the whole
    table): leases are written in the order they start, so the walk stops at the first step whose
    leases all started after the cutoff — none of them, nor any after it, can have ended before."""
    report = PurgeReport(before=now - lease_retention())
    started = time.monotonic()
    lease_table = connection.ops.quote_name(Lease._meta.db_table)
    low = Lease.objects.order_by("pk").values_list("pk", flat=True).first()
    while low is not None:
        high = low + batch
        step = Lease.objects.filter(pk__gte=low, pk__lt=high)
        with transaction.atomic():
            ids = list(step.filter(expires_at__lt=report.before).values_list("pk", flat=True))
            if ids:
                Call.objects.filter(lease_id__in=ids).update(lease=None)
                with connection.cursor() as cursor:
                    # The rows only: nothing else points at a lease (calls were unlinked just above).
                    placeholders = ", ".join(["%s"] * len(ids))
                    cursor.execute(f"DELETE FROM {lease_table} WHERE id IN ({placeholders})", ids)
                    report.deleted += cursor.rowcount
                report.batches += 1
        if not ids and not step.filter(started_at__lt=report.before).exists():
            break  # every lease from here on started after the cutoff
        low = Lease.objects.filter(pk__gte=high).order_by("pk").values_list("pk", flat=True).first()
        if time.monotonic() - started > budget_seconds:
            report.complete = False  # the next run goes on from here
            break
    report.seconds = time.monotonic() - started
    return report
