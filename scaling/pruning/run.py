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

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from accounts.models import Account, User
from ringpools.choices import NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.applicability import applicable_pools
from scaling.audit import AuditEntry, reason_cut, scaling_events_record
from scaling.choices import EventKind, OrderKind, PruneOutcome, Trigger
from scaling.models import CarrierOrder, MonthlyPrune
from scaling.pruning.plans import (
    BATCH_POOLS,
    USE_FIELDS,
    PoolPrunePlan,
    number_use_of,
    number_uses,
    pools_for_plans,
    prune_plans,
)
from scaling.pruning.rule import NumberVerdict, PruneRule, number_use_rule, prune_month
from scaling.supply.outbox import Removal, carrier_orders_due, pools_numbers_release_begin


@dataclass(frozen=True)
class PoolPruneResult:
    """What a run did (or, dry, would do) to one pool."""

    plan: PoolPrunePlan
    outcome: str  # a PruneOutcome, or "already" when another run decided this pool this month
    removed: tuple[NumberVerdict, ...]
    reason: str
    orders: tuple[CarrierOrder, ...] = ()


ReleaseOrders = Callable[[list[CarrierOrder]], object]
# Pools whose removals are written per transaction (a constant number of statements per batch).
APPLY_POOLS = 50


def pools_due_for_prune(*, now: datetime) -> Iterator[tuple[date, QuerySet[RingPool]]]:
    """Per month being closed at `now`, the pools where auto-scaling applies whose account is on its
    last local day of that month and whose prune for it is not decided yet."""
    zones: dict[date, list[str]] = {}
    for name in Account.objects.order_by().values_list("timezone", flat=True).distinct():
        month = prune_month(now=now, tz=ZoneInfo(str(name)))
        if month is not None:
            zones.setdefault(month, []).append(str(name))
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
    """One month-end pass at `now`, pool by pool (lazy: consume it). `release` gets the release
    orders of each batch of pools after its transaction committed (and, at the end, the orders of
    earlier runs still waiting); without it the outbox's reconciliation sends them. `complete`: every
    number's verdict in the results (for people to read), not only the removals."""
    run = uuid.uuid4()
    for month, pools in pools_due_for_prune(now=now):
        plans = prune_plans(pools=pools.iterator(chunk_size=BATCH_POOLS), now=now, complete=complete)
        while batch := [plan for _, plan in zip(range(APPLY_POOLS), plans, strict=False)]:
            if dry_run:
                for plan in batch:
                    outcome = PruneOutcome.PRUNED if plan.removals else PruneOutcome.SKIPPED
                    yield PoolPruneResult(plan, outcome, tuple(plan.removals), plan.plan.reason)
                continue
            results = _batch_apply(batch, month=month, now=now, actor=actor, trigger=trigger, run=run)
            orders = [order for result in results for order in result.orders]
            if orders and release is not None:
                release(orders)
            yield from results
    if not dry_run and release is not None:
        waiting = carrier_orders_due(now=now).filter(kind=OrderKind.RELEASE, trigger=Trigger.PRUNE)
        if waiting := list(waiting.select_related("number")):
            release(waiting)


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
    out of rotation with their release orders and events, and one event per skipped pool."""
    with transaction.atomic():
        still = _still_unused([v for plan in batch for v in plan.plan.removals], now)
        decisions = []
        for plan in batch:
            removals = [v for v in plan.plan.removals if v.number.id in still]
            reason = plan.plan.reason
            if len(removals) < len(plan.plan.removals):
                reason += f"; {len(plan.plan.removals) - len(removals)} used since the plan was read, kept"
            figures = {**plan.plan.figures, "month": f"{month:%Y-%m}", "local_date": str(plan.local_date)}
            decisions.append((plan, removals, reason_cut(reason), figures))
        MonthlyPrune.objects.bulk_create(
            [
                MonthlyPrune(
                    account_id=plan.pool.account_id,
                    pool=plan.pool,
                    month=month,
                    outcome=PruneOutcome.PRUNED if removals else PruneOutcome.SKIPPED,
                    removed=len(removals),
                    reason=reason,
                    figures={**figures, "removed_ids": [v.number.id for v in removals]},
                    trigger=trigger,
                    actor=actor,
                    decided_at=now,
                    run=run,
                )
                for plan, removals, reason, figures in decisions
            ],
            ignore_conflicts=True,
        )
        ours = set(
            MonthlyPrune.objects.filter(
                pool_id__in=[p.pool.pk for p in batch], month=month, run=run
            ).values_list("pool_id", flat=True)
        )
        orders = pools_numbers_release_begin(
            removals={
                plan.pool: [_removal(v, figures, now) for v in removals]
                for plan, removals, _, figures in decisions
                if removals and plan.pool.pk in ours
            },
            trigger=trigger,
            actor=actor,
            now=now,
        )
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
    orders_of: dict[int, list[CarrierOrder]] = {}
    for order in orders:
        orders_of.setdefault(order.pool_id, []).append(order)
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


def _still_unused(planned: list[NumberVerdict], now: datetime) -> set[int]:
    """Of the planned removals, those still unused, locked so the hand-out cannot take them now."""
    if not planned:
        return set()
    rows = (
        number_uses(
            PromoNumber.objects.filter(pk__in=[v.number.id for v in planned], state=NumberState.ACTIVE), now
        )
        .select_for_update(of=("self",))
        .order_by("pk")
        .values_list(*USE_FIELDS)
    )
    return {
        row[1] for row in rows if number_use_rule(number_use_of(row, now), now=now)[0] == PruneRule.UNUSED
    }


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
