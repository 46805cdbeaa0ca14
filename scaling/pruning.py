"""Month-end pruning (SPEC §7): the plan, the once-per-month record, and the removal of numbers.

One function draws every plan — `prune_plans` — so the admin preview, the dry run and the real run
cannot disagree: it streams the active numbers of a batch of pools (never every number at once) and
hands each pool's facts to the pure rule `policy.prune_decide`.

The real run (`ringpools_prune`) acts on a pool only on the last day of its account's local month,
and once per pool and month: in one transaction per batch of pools it re-checks the planned numbers
under row locks (a visitor may have been handed one since the plan was read), writes each pool's
`MonthlyPrune` record (unique per pool and month; a pool another run decided meanwhile is left to
it) and takes the numbers out of rotation through the carrier outbox. The
carrier is called after the commit, outside any transaction; a run killed after the commit leaves
pending release orders that the next run — or the outbox's reconciliation — sends, so the same plan
is finished and no new one is drawn for that pool.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import BooleanField, CharField, Count, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.db.models.functions import Cast

from accounts.models import Account, User
from ringpools.choices import NumberRole, NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.choices import EventKind, OrderKind, PruneOutcome, Trigger
from scaling.models import CarrierOrder, MonthlyPrune, ScalingEvent
from scaling.outbox import Removal, carrier_orders_due, pools_numbers_release_begin
from scaling.policy import (
    PRUNE_CALLED_WINDOW,
    PRUNE_PRESENTED_WINDOW,
    NumberUse,
    NumberVerdict,
    PrunePlan,
    PruneRule,
    number_use_rule,
    prune_decide,
    prune_month,
)
from scaling.selectors import applicable_pools, pool_applicability, pools_with_applicability

# Pools planned per streamed read of their numbers: bounds memory whatever the number of pools.
BATCH_POOLS = 250

_USE_FIELDS = (
    "pool_id",
    "id",
    "role",
    "is_pinned",
    "leased_now",
    "acquired_at",
    "last_presented_at",
    "last_called_at",
    "e164",
    "monthly_cost",
)


def _uses(numbers: QuerySet[PromoNumber], now: datetime) -> QuerySet[PromoNumber]:
    # The number as stored (E.164 text): parsing a million PhoneNumber objects would cost more than
    # the whole prune; it is formatted for people only where it is shown. Pinned and leased come as
    # booleans: fewer timestamps to decode per row.
    return numbers.annotate(
        e164=Cast("number", output_field=CharField()),
        is_pinned=ExpressionWrapper(Q(pinned_at__isnull=False), output_field=BooleanField()),
        leased_now=ExpressionWrapper(Q(busy_until__gt=now), output_field=BooleanField()),
    )


def _maybe_unused(numbers: QuerySet[PromoNumber], now: datetime) -> QuerySet[PromoNumber]:
    """Narrows the numbers read to those the rule might find unused (a superset: the rule decides)."""
    return numbers.filter(
        Q(last_presented_at__isnull=True) | Q(last_presented_at__lt=now - PRUNE_PRESENTED_WINDOW),
        Q(last_called_at__isnull=True) | Q(last_called_at__lt=now - PRUNE_CALLED_WINDOW),
        role=NumberRole.ROTATING,
        pinned_at__isnull=True,
        busy_until__lte=now,
    )


def _number_use(row: Sequence[Any], now: datetime) -> NumberUse:
    _, pk, role, pinned, leased, acquired_at, presented, called, number, cost = row
    return NumberUse(
        id=pk,
        is_overflow_number=role == NumberRole.OVERFLOW,
        pinned=pinned,
        leased=leased,
        acquired_at=acquired_at,
        last_presented_at=presented,
        last_called_at=called,
        label=number,
        monthly_cost=cost,
    )


@dataclass(frozen=True)
class PoolPlan:
    """One pool's prune as of `now`: the month it would prune (None: not its account's last day) and
    the rule's plan; `applies` / `why_not` when auto-scaling is off for it; `done` if this month's
    prune was already decided."""

    pool: RingPool
    now: datetime
    local_date: date
    month: date | None
    plan: PrunePlan
    applies: bool = True
    why_not: str = ""
    done: MonthlyPrune | None = None

    @property
    def removals(self) -> list[NumberVerdict]:
        return self.plan.removals if self.applies and self.done is None else []


def prune_plans(*, pools: Iterable[RingPool], now: datetime, complete: bool = True) -> Iterator[PoolPlan]:
    """The prune plan of each pool at `now` (pools read through `pools_with_applicability`, with
    their account). The preview, the dry run and the real run all read their plans here.

    `complete`: every number gets its verdict (the preview, the command). Otherwise only the numbers
    that might be unused are read, with each pool's count of rotating numbers: the same decision, at
    a fraction of the reading (the scheduled run).
    """
    pools = iter(pools)
    while batch := [pool for _, pool in zip(range(BATCH_POOLS), pools, strict=False)]:
        yield from _plan_batch(batch, now, complete)


def _plan_batch(batch: list[RingPool], now: datetime, complete: bool) -> Iterator[PoolPlan]:
    by_id = {pool.pk: pool for pool in batch}
    tz_of = {pool.pk: ZoneInfo(str(pool.account.timezone)) for pool in batch}
    months = {pk: prune_month(now=now, tz=tz) for pk, tz in tz_of.items()}
    # This local month's prune, if decided (the preview shows it on any day of the month).
    current = {pk: now.astimezone(tz).date().replace(day=1) for pk, tz in tz_of.items()}
    done = {
        record.pool_id: record
        for record in MonthlyPrune.objects.filter(pool_id__in=by_id, month__in=set(current.values()))
        if record.month == current[record.pool_id]
    }
    active = PromoNumber.objects.filter(pool_id__in=by_id, state=NumberState.ACTIVE)
    rotating: dict[int, int] = {}
    if not complete:
        counted = active.filter(role=NumberRole.ROTATING).order_by().values("pool_id").annotate(n=Count("id"))
        rotating = {row["pool_id"]: row["n"] for row in counted}
        active = _maybe_unused(active, now)
    rows = _uses(active, now).order_by("pool_id").values_list(*_USE_FIELDS).iterator(chunk_size=5000)
    numbers_of = {pool_id: list(group) for pool_id, group in groupby(rows, key=lambda row: row[0])}
    for pk, pool in by_id.items():
        verdict = pool_applicability(pool)
        plan = prune_decide(
            now=now,
            min_size=pool.min_size,
            last_overflow_at=pool.last_overflow_at,
            numbers=(_number_use(row, now) for row in numbers_of.pop(pk, ())),
            rotating=None if complete else rotating.get(pk, 0),
        )
        yield PoolPlan(
            pool=pool,
            now=now,
            local_date=now.astimezone(tz_of[pk]).date(),
            month=months[pk],
            plan=plan,
            applies=verdict.applies,
            why_not="" if verdict.applies else verdict.reason,
            done=done.get(pk),
        )


def _with_facts(queryset: QuerySet[RingPool]) -> QuerySet[RingPool]:
    return pools_with_applicability(queryset).select_related("account").order_by("account_id", "name", "pk")


def pool_prune_preview(*, pool: RingPool, now: datetime) -> PoolPlan:
    """What the month-end prune would do to this pool if the month ended now."""
    return next(prune_plans(pools=_with_facts(RingPool.objects.filter(pk=pool.pk)), now=now))


def account_prune_preview(*, account: Account, now: datetime) -> Iterator[PoolPlan]:
    """The same for every pool of an account."""
    return prune_plans(pools=_with_facts(RingPool.objects.filter(account=account)), now=now)


# --- The real run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolPruneResult:
    """What a run did (or, dry, would do) to one pool."""

    plan: PoolPlan
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
        yield month, _with_facts(pools).order_by("account_id", "pk")


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
    batch: list[PoolPlan], *, month: date, now: datetime, actor: User | None, trigger: str, run: uuid.UUID
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
            decisions.append((plan, removals, reason[:300], figures))
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
        ScalingEvent.objects.bulk_create(
            ScalingEvent(
                account_id=plan.pool.account_id,
                pool=plan.pool,
                kind=EventKind.PRUNE_SKIPPED,
                trigger=trigger,
                reason=reason,
                figures=figures,
                actor=actor,
                created_at=now,
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
        _uses(
            PromoNumber.objects.filter(pk__in=[v.number.id for v in planned], state=NumberState.ACTIVE), now
        )
        .select_for_update(of=("self",))
        .order_by("pk")
        .values_list(*_USE_FIELDS)
    )
    return {row[1] for row in rows if number_use_rule(_number_use(row, now), now=now)[0] == PruneRule.UNUSED}


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
