"""Celery tasks of the scaling app: each loads, calls one service, and decides about retries.

Every task here may run twice, at once or after a redelivery (late acks, a worker killed, two Beats
for a moment): each takes its work by compare-and-swap or a lock, so a copy finds nothing left to do.
Beat's passes only decide and queue; the carrier's seconds-long calls run in `run_carrier_orders`, on
the `carrier` queue, fanned out over the workers and at most RINGPOOL_CARRIER_CONCURRENCY at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Task, shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.locks import JobLock, carrier_slot, job_session_lock
from scaling.alerts.conditions import alerts_check
from scaling.alerts.mail import alert_digests_send, alert_mails_send
from scaling.choices import OrderState
from scaling.growth.run import ringpools_grow
from scaling.models import CarrierOrder, JobRun
from scaling.pruning.renewal import renewals_release
from scaling.pruning.run import ringpools_prune
from scaling.supply.carrier import get_carrier
from scaling.supply.choice import SharedSearch
from scaling.supply.outbox import carrier_order_run, carrier_orders_dispatch
from scaling.supply.reconcile import carrier_numbers_reconcile

log = logging.getLogger(__name__)

# Orders per carrier task: a few seconds of carrier calls each, far inside the visibility timeout.
ORDERS_PER_TASK = 5
# A carrier task finding every slot taken tries again after this long.
SLOT_WAIT_SECONDS = 2


def carrier_orders_queue(order_ids: Sequence[int]) -> None:
    """Hand orders to the carrier workers once the transaction that wrote them has committed."""
    ids = list(order_ids)

    def send() -> None:
        for start in range(0, len(ids), ORDERS_PER_TASK):
            run_carrier_orders.delay(ids[start : start + ORDERS_PER_TASK])

    transaction.on_commit(send)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def run_carrier_orders(self: Task, order_ids: list[int]) -> int:
    """Carry out pending purchases and releases, one carrier slot held. An order another process
    holds, or finished, is skipped; failures are retried with back-off by the reconcile pass."""
    if not CarrierOrder.objects.filter(pk__in=order_ids, state=OrderState.PENDING).exists():
        return 0  # a copy of a task whose orders are finished: no slot taken
    with carrier_slot(settings.RINGPOOL_CARRIER_CONCURRENCY) as got_one:
        if not got_one:
            raise self.retry(countdown=SLOT_WAIT_SECONDS)
        done = 0
        carrier = get_carrier()
        search = SharedSearch(carrier)  # the task's orders of one area share one search
        for order in CarrierOrder.objects.filter(pk__in=order_ids, state=OrderState.PENDING).order_by("pk"):
            try:
                ended = carrier_order_run(order, carrier=carrier, search=search)
            except Exception:
                # The others of this task still run; this one's claim lapses and reconciliation retries it.
                log.exception("Carrier order %s failed unexpectedly", order.request_id)
                continue
            done += ended.state == OrderState.DONE
    return done


@shared_task(acks_late=True, reject_on_worker_lost=True)
def reconcile_carrier_orders() -> int:
    """Hand every pending order whose back-off is over (or whose worker died) to the carrier workers.
    Safe to run twice at once: each order is taken by compare-and-swap when it runs."""
    ids = carrier_orders_dispatch(now=timezone.now())
    carrier_orders_queue(ids)
    if ids:
        log.info("reconcile_carrier_orders: handed %d pending orders to the carrier workers", len(ids))
    return len(ids)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def reconcile_carrier_numbers() -> int:
    """Compare the carrier's list of the platform's numbers with ours; adopt or release what differs."""
    with job_session_lock(JobLock.CARRIER_NUMBERS_RECONCILE) as acquired:
        if not acquired:
            return 0
        report = carrier_numbers_reconcile(now=timezone.now())
    if report.changed:
        log.warning("reconcile_carrier_numbers: %s", report.summary())
    return report.changed


@shared_task(acks_late=True, reject_on_worker_lost=True)
def grow_ringpools() -> int:
    """One grow pass (SPEC §6): decides and queues the purchases. Safe to run twice at once or to
    redeliver: each pool's growth is taken by compare-and-swap with its orders."""
    report = ringpools_grow(dispatch=carrier_orders_queue)
    if report.plans:
        log.info("grow_ringpools: %d pools overflowed, %d numbers queued", len(report.plans), report.queued)
    return report.queued


@shared_task(acks_late=True, reject_on_worker_lost=True)
def prune_ringpools() -> int:
    """The month-end prune where it is an account's last local day. Idempotent (one decision per
    pool and month, in the database); the releases go to the carrier workers."""
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


@shared_task(acks_late=True, reject_on_worker_lost=True)
def release_at_renewal() -> int:
    """The adaptive policy: numbers about to renew that the pool no longer needs are released
    (scaling.pruning.renewal). It shares the month-end prune's lock: one releasing pass at a time,
    each counting the pool's size as the other left it (a run that finds the lock taken does nothing;
    the next one, 5 minutes later, is still within the renewal's 15-minute notice). The releases go
    to the carrier workers."""
    with job_session_lock(JobLock.PRUNE_RINGPOOLS) as acquired:
        if not acquired:
            log.info("release_at_renewal: the prune or another run holds the lock")
            return 0
        verdicts = renewals_release(now=timezone.now(), release=_queue_release)
    released = sum(1 for verdict in verdicts if verdict.order_id is not None)
    if verdicts:
        log.info("release_at_renewal: %d renewals decided, %d numbers released", len(verdicts), released)
    return released


def _queue_release(order_ids: list[int]) -> None:
    carrier_orders_queue(order_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def release_carrier_orders(order_ids: list[int]) -> int:
    """Kept for messages queued before an upgrade: the same as `run_carrier_orders`."""
    carrier_orders_queue(order_ids)
    return len(order_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def check_alerts() -> int:
    """Every alert condition, now; then the mails of episodes opened or resolved. Returns the mails
    sent. One run at a time; a copy that finds the lock taken does nothing."""
    with job_session_lock(JobLock.CHECK_ALERTS) as acquired:
        if not acquired:
            return 0
        now = timezone.now()
        report = alerts_check(now=now)
        if report.opened or report.resolved:
            log.info("check_alerts: %d opened, %d resolved", len(report.opened), len(report.resolved))
        return alert_mails_send(now=now)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_alert_digests() -> int:
    """The daily alert digest to those who asked for it, in the hour RINGPOOL_ALERT_DIGEST_HOUR_UTC
    (sent hourly by Beat; once a day: a run after today's digest went out sends nothing). Returns
    how many went."""
    now = timezone.now()
    if now.hour != settings.RINGPOOL_ALERT_DIGEST_HOUR_UTC:
        return 0
    sent_today = JobRun.objects.filter(
        task="scaling.tasks.send_alert_digests",
        last_succeeded_at__gte=now.replace(minute=0, second=0, microsecond=0),
    )
    if sent_today.exists():
        return 0
    return alert_digests_send(now=now)
