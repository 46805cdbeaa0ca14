"""Celery tasks of the scaling app: each loads, calls one service, and decides about retries."""

from __future__ import annotations

import logging

from celery import shared_task

from scaling.growth import ringpools_grow
from scaling.outbox import carrier_orders_reconcile

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
