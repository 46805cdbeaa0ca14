"""Celery tasks of the scaling app: each loads, calls one service, and decides about retries."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from config.locks import JobLock, job_session_lock
from scaling.choices import OrderState
from scaling.growth.run import ringpools_grow
from scaling.models import CarrierOrder
from scaling.pruning.run import ringpools_prune
from scaling.supply.outbox import carrier_orders_reconcile, carrier_orders_run

log = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def reconcile_carrier_orders() -> int:
    """Finish carrier purchases and releases left pending. Safe to run twice at once: each order is
    taken by compare-and-swap, and no lock is held while the carrier answers."""
    finished = carrier_orders_reconcile()
    if finished:
        log.info("reconcile_carrier_orders: took up %d pending orders", len(finished))
    return len(finished)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def grow_ringpools() -> int:
    """One grow pass (SPEC §6). Safe to run twice at once or to redeliver: each pool's growth is taken
    by compare-and-swap, and carrier failures are retried with back-off by the next passes."""
    report = ringpools_grow()
    if report.plans:
        log.info("grow_ringpools: %d pools overflowed, %d numbers added", len(report.plans), report.added)
    return report.added


@shared_task(acks_late=True, reject_on_worker_lost=True)
def prune_ringpools() -> int:
    """The month-end prune where it is an account's last local day. Idempotent (one decision per
    pool and month, in the database); the releases go to `release_carrier_orders`, pool by pool."""
    with job_session_lock(JobLock.PRUNE_RINGPOOLS) as acquired:
        if not acquired:
            log.info("prune_ringpools: another run holds the lock")
            return 0
        pools = removed = 0
        for result in ringpools_prune(now=timezone.now(), release=_queue_release):
            pools, removed = pools + 1, removed + len(result.removed)
    if pools:
        log.info("prune_ringpools: decided %d pools, removed %d numbers", pools, removed)
    return removed


def _queue_release(orders: list[CarrierOrder]) -> None:
    release_carrier_orders.delay([order.pk for order in orders])


@shared_task(acks_late=True, reject_on_worker_lost=True)
def release_carrier_orders(order_ids: list[int]) -> int:
    """Send queued releases to the carrier. Orders another process took (or finished) are skipped;
    failures are retried by reconciliation."""
    orders = CarrierOrder.objects.filter(pk__in=order_ids, state=OrderState.PENDING).select_related("number")
    return len(carrier_orders_run(orders=list(orders)))
