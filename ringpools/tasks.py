from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from config.locks import JobLock, job_lock, job_session_lock
from ringpools.figures import figures_compact
from ringpools.retention import leases_purge

log = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def compact_hourly_figures() -> int:
    """Idempotent and lock-guarded: a second copy running at once does nothing."""
    with job_lock(JobLock.COMPACT_HOURLY_FIGURES) as acquired:
        if not acquired:
            log.info("compact_hourly_figures: another worker is at it")
            return 0
        # Five minutes of slack: a request that began before the hour turned may still be writing.
        removed = figures_compact(before=timezone.now() - timedelta(minutes=5))
    log.info("compact_hourly_figures: folded %d shard rows", removed)
    return removed


@shared_task(acks_late=True, reject_on_worker_lost=True)
def purge_old_leases() -> int:
    """Deletes leases past their retention, in small batches; one run at a time (a lock)."""
    with job_session_lock(JobLock.PURGE_LEASES) as acquired:
        if not acquired:
            log.info("purge_old_leases: another worker is at it")
            return 0
        report = leases_purge(now=timezone.now(), budget_seconds=60)
    if report.deleted:
        log.info(
            "purge_old_leases: deleted %d leases ended before %s in %d batches (%.1f s)%s",
            report.deleted,
            report.before.isoformat(),
            report.batches,
            report.seconds,
            "" if report.complete else "; more left for the next run",
        )
    return report.deleted
