"""The month-end prune pass (SPEC §7): once per pool and month, on its account's last local day.

The real run (`ringpools_prune`) acts on a pool only on the last day of its account's local month,
and once per pool and month: in one transaction per batch of pools it re-checks the planned numbers
under row locks (a visitor may have been handed one since the plan was read), writes each pool's
`MonthlyPrune` record (unique per pool and month; a pool another run decided meanwhile is left to
it) and takes the numbers out of rotation through the carrier outbox. The carrier is called after
the commit, outside any transaction; a run killed after the commit leaves pending release orders
that the next run — or the outbox's reconciliation — sends, so the same plan is finished and no new
one is drawn for that pool.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, connections, transaction
from django.db.models import Exists, OuterRef, QuerySet

from accounts.models import Account, User
from ringpools.models import RingPool
from scaling.applicability import applicable_pools
from scaling.audit import AuditEntry, reason_cut, scaling_events_record
from scaling.choices import EventKind, OrderKind, PruneOutcome, Trigger
from scaling.models import MonthlyPrune
from scaling.pruning.plans import BATCH_POOLS, PoolPrunePlan, pools_for_plans, prune_plans, still_unused_at
from scaling.pruning.rule import NumberVerdict, prune_month
from scaling.supply.outbox import Removal, carrier_orders_due, pools_numbers_release_begin


@dataclass(frozen=True)
class PoolPruneResult:
    """What a run did (or, dry, would do) to one pool."""

    plan: PoolPrunePlan
    outcome: str  # a PruneOutcome, or "already" when another run decided this pool this month
    removed: tuple[NumberVerdict, ...]
    reason: str
    order_ids: tuple[int, ...] = ()  # its release orders


ReleaseOrders = Callable[[list[int]], object]  # gets the ids of release orders once committed
# Pools whose removals are written per transaction (a constant number of statements per batch).
APPLY_POOLS = 50
# Batches written at once, each on its own connection (PostgreSQL), while the next are planned: the
# server's work — index entries, foreign-key checks, WAL — is most of a batch's cost, and while one
# writer's statement runs another's Python builds the next (bench/prune.py on this 2-CPU machine,
# 1,000,000 numbers: one writer 25 s, two 14-15 s, three 13-14 s, four 12.6-13.6 s). Each writer is
# one more database connection, for the length of the pass. Batches hold disjoint pools: writers
# never wait for each other's rows.
WRITERS = 4
# Batches planned or being written at most (bounds memory).
PLANNED_AHEAD = WRITERS + 1


def zones_closing_month(*, now: datetime) -> dict[str, date]:
    """The accounts' time zones that are on the last local day of a month at `now`, each with the
    month it closes."""
    closing = {}
    for name in Account.objects.order_by().values_list("timezone", flat=True).distinct():
        month = prune_month(now=now, tz=ZoneInfo(str(name)))
        if month is not None:
            closing[str(name)] = month
    return closing


def pools_due_for_prune(*, now: datetime) -> Iterator[tuple[date, QuerySet[RingPool]]]:
    """Per month being closed at `now`, the pools where auto-scaling applies whose account is on its
    last local day of that month and whose prune for it is not decided yet."""
    zones: dict[date, list[str]] = {}
    for name, month in zones_closing_month(now=now).items():
        zones.setdefault(month, []).append(name)
    for month, names in sorted(zones.items()):
        decided = MonthlyPrune.objects.filter(pool=OuterRef("pk"), month=month)
        pools = applicable_pools().filter(account__timezone__in=names).exclude(Exists(decided))
        yield month, pools_for_plans(pools).order_by("account_id", "pk")


def ringpools_prune(
    *,
    now: datetime,
    dry_run: bool = False,
    release: ReleaseOrders | None = None,
    actor: User | None = None,
    trigger: str = Trigger.PRUNE,
    complete: bool = False,
) -> Iterator[PoolPruneResult]:
    """One month-end pass at `now`, pool by pool (lazy: consume it). `release` gets the ids of
    the release orders of each batch of pools after its transaction committed (and, at the end, of
    earlier runs' orders still waiting); without it the outbox's reconciliation sends them. `complete`: every
    number's verdict in the results (for people to read), not only the removals."""
    run = uuid.uuid4()
    written: deque[Future[list[PoolPruneResult]]] = deque()
    with _writer() as writer:
        for month, pools in pools_due_for_prune(now=now):
            plans = prune_plans(pools=pools.iterator(chunk_size=BATCH_POOLS), now=now, complete=complete)
            while batch := [plan for _, plan in zip(range(APPLY_POOLS), plans, strict=False)]:
                if dry_run:
                    for plan in batch:
                        outcome = PruneOutcome.PRUNED if plan.removals else PruneOutcome.SKIPPED
                        yield PoolPruneResult(plan, outcome, tuple(plan.removals), plan.plan.reason)
                    continue
                written.append(
                    writer.submit(
                        _batch_apply, batch, month=month, now=now, actor=actor, trigger=trigger, run=run
                    )
                )
                while len(written) > PLANNED_AHEAD or (written and written[0].done()):
                    yield from _released(written.popleft().result(), release)
        while written:
            yield from _released(written.popleft().result(), release)
    if not dry_run and release is not None:
        waiting = carrier_orders_due(now=now).filter(kind=OrderKind.RELEASE, trigger=Trigger.PRUNE)
        if waiting_ids := list(waiting.values_list("pk", flat=True)):
            release(waiting_ids)


def _released(results: list[PoolPruneResult], release: ReleaseOrders | None) -> list[PoolPruneResult]:
    """A batch's results, its release orders handed on first (its transaction has committed)."""
    if release is not None and (ids := [pk for result in results for pk in result.order_ids]):
        release(ids)
    return results


@contextmanager
def _writer() -> Iterator[Executor]:
    """Where batches are written: on PostgreSQL, outside any transaction, WRITERS threads with their
    own connections, while this thread plans the next batches. Elsewhere — SQLite has one writer, and
    a caller's transaction must see its own writes — here, in order."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield _Here()
        return
    with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="prune-writer") as pool:
        try:
            yield pool
        finally:
            # Each thread closes its own connection: the barrier makes each take one of these calls.
            everyone = threading.Barrier(WRITERS)
            for closed in [pool.submit(_close_when_all_here, everyone) for _ in range(WRITERS)]:
                closed.result()


def _close_when_all_here(everyone: threading.Barrier) -> None:
    everyone.wait(timeout=60)
    connections.close_all()


class _Here(Executor):
    """Runs each submitted call at once, in this thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # handed to whoever reads the result, as a thread pool does
            future.set_exception(error)
        return future


def _batch_apply(
    batch: list[PoolPrunePlan],
    *,
    month: date,
    now: datetime,
    actor: User | None,
    trigger: str,
    run: uuid.UUID,
) -> list[PoolPruneResult]:
    """Decide a batch of pools for the month in one transaction: the monthly records (the database
    refuses a second one per pool and month: a pool another run decided is left to it), the numbers
    out of rotation with their release orders and events — only those still unused, checked in the
    statement that takes them — and one event per pool that ends up removing nothing."""
    with transaction.atomic():
        figures_of = {
            plan.pool.pk: {**plan.plan.figures, "month": f"{month:%Y-%m}", "local_date": str(plan.local_date)}
            for plan in batch
        }
        # The records first, as planned: they claim the pools for this run before any number moves.
        MonthlyPrune.objects.bulk_create(
            [
                MonthlyPrune(
                    account_id=plan.pool.account_id,
                    pool=plan.pool,
                    month=month,
                    outcome=PruneOutcome.PRUNED if plan.plan.removals else PruneOutcome.SKIPPED,
                    removed=len(plan.plan.removals),
                    reason=reason_cut(plan.plan.reason),
                    figures={
                        **figures_of[plan.pool.pk],
                        "removed_ids": [v.number.id for v in plan.plan.removals],
                    },
                    trigger=trigger,
                    actor=actor,
                    decided_at=now,
                    run=run,
                )
                for plan in batch
            ],
            ignore_conflicts=True,
        )
        ours = set(
            MonthlyPrune.objects.filter(
                pool_id__in=[p.pool.pk for p in batch], month=month, run=run
            ).values_list("pool_id", flat=True)
        )
        queued = pools_numbers_release_begin(
            removals={
                plan.pool: [_removal(v, figures_of[plan.pool.pk], now) for v in plan.plan.removals]
                for plan in batch
                if plan.plan.removals and plan.pool.pk in ours
            },
            trigger=trigger,
            actor=actor,
            now=now,
            only=still_unused_at(now),
        )
        gone = {release.number_id for release in queued}
        decisions = []
        for plan in batch:
            removals = [v for v in plan.plan.removals if v.number.id in gone]
            reason = plan.plan.reason
            if plan.pool.pk in ours and len(removals) < len(plan.plan.removals):
                reason += f"; {len(plan.plan.removals) - len(removals)} used since the plan was read, kept"
                _record_correct(plan, removals, reason_cut(reason), month=month, run=run)
            decisions.append((plan, removals, reason_cut(reason), figures_of[plan.pool.pk]))
        scaling_events_record(
            AuditEntry(
                account_id=plan.pool.account_id,
                pool_id=plan.pool.pk,
                kind=EventKind.PRUNE_SKIPPED,
                trigger=trigger,
                reason=reason,
                figures=figures,
                actor=actor,
                now=now,
            )
            for plan, removals, reason, figures in decisions
            if not removals and plan.pool.pk in ours
        )
    orders_of: dict[int, list[int]] = {}
    for order in queued:
        orders_of.setdefault(order.pool_id, []).append(order.order_id)
    results = []
    for plan, removals, reason, _ in decisions:
        if plan.pool.pk not in ours:
            results.append(PoolPruneResult(plan, "already", (), "another run decided this pool this month"))
            continue
        outcome = PruneOutcome.PRUNED if removals else PruneOutcome.SKIPPED
        results.append(
            PoolPruneResult(plan, outcome, tuple(removals), reason, tuple(orders_of.get(plan.pool.pk, ())))
        )
    return results


def _record_correct(
    plan: PoolPrunePlan, removals: list[NumberVerdict], reason: str, *, month: date, run: uuid.UUID
) -> None:
    """A pool's monthly record says what really went when numbers were used between the plan's read
    and their removal (rare: a visitor arriving in that second)."""
    record = MonthlyPrune.objects.get(pool_id=plan.pool.pk, month=month, run=run)
    record.removed = len(removals)
    record.outcome = PruneOutcome.PRUNED if removals else PruneOutcome.SKIPPED
    record.reason = reason
    record.figures = {**record.figures, "removed_ids": [v.number.id for v in removals]}
    record.save(update_fields=["removed", "outcome", "reason", "figures"])


def _removal(verdict: NumberVerdict, figures: dict[str, Any], now: datetime) -> Removal:
    number = verdict.number
    return Removal(
        number.id,
        f"month-end prune: {verdict.reason}",
        # The number's facts and the pool's limits; the pool's whole figures are on its MonthlyPrune.
        {
            "month": figures["month"],
            "rule": verdict.rule.value,
            "days_since_presented": _days_since(now, number.last_presented_at),
            "days_since_called": _days_since(now, number.last_called_at),
            "monthly_cost": str(number.monthly_cost),
            **{key: figures[key] for key in ("rotating", "cap", "cap_hit", "min_size_hit")},
        },
    )


def _days_since(now: datetime, at: datetime | None) -> float | None:
    return round((now - at).total_seconds() / 86400, 2) if at else None
