"""Celery tasks of the scaling app: each loads, calls one service, and decides about retries."""

from __future__ import annotations

import logging

from celery import shared_task

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
