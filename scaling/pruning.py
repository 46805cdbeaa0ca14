"""Month-end pruning (SPEC §7): the plan, the once-per-month record, and the removal of numbers.

One function draws every plan — `prune_plans` — so the admin preview, the dry run and the real run
cannot disagree: it streams the active numbers of a batch of pools (never every number at once) and
hands each pool's facts to the pure rule `policy.prune_decide`.

The real run (`ringpools_prune`) acts on a pool only on the last day of its account's local month,
and once per pool and month: in one transaction it re-checks the planned numbers under row locks (a
visitor may have been handed one since the plan was read), writes the pool's `MonthlyPrune` record
(unique per pool and month) and takes the numbers out of rotation through the carrier outbox. The
carrier is called after the commit, outside any transaction; a run killed after the commit leaves
pending release orders that the next run — or the outbox's reconciliation — sends, so the same plan
is finished and no new one is drawn for that pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import CharField, Exists, OuterRef, QuerySet
from django.db.models.functions import Cast

from accounts.models import Account, User
from ringpools.choices import NumberRole, NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.choices import EventKind, OrderKind, PruneOutcome, Trigger
from scaling.models import CarrierOrder, MonthlyPrune, ScalingEvent
from scaling.outbox import Removal, carrier_orders_due, numbers_release_begin
from scaling.policy import (
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
    "pinned_at",
    "busy_until",
    "acquired_at",
    "last_presented_at",
    "last_called_at",
    "e164",
    "monthly_cost",
)


def _uses(numbers: QuerySet[PromoNumber]) -> QuerySet[PromoNumber]:
    # The number as stored (E.164 text): parsing a million PhoneNumber objects would cost more than
    # the whole prune; it is formatted for people only where it is shown.
    return numbers.annotate(e164=Cast("number", output_field=CharField()))


def _number_use(row: Sequence[Any], now: datetime) -> NumberUse:
    _, pk, role, pinned_at, busy_until, acquired_at, presented, called, number, cost = row
    return NumberUse(
        id=pk,
        is_overflow_number=role == NumberRole.OVERFLOW,
        pinned=pinned_at is not None,
        leased=busy_until > now,
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


def prune_plans(*, pools: Iterable[RingPool], now: datetime) -> Iterator[PoolPlan]:
    """The prune plan of each pool at `now` (pools read through `pools_with_applicability`, with
    their account). The preview, the dry run and the real run all read their plans here."""
    pools = iter(pools)
    while batch := [pool for _, pool in zip(range(BATCH_POOLS), pools, strict=False)]:
        yield from _plan_batch(batch, now)


def _plan_batch(batch: list[RingPool], now: datetime) -> Iterator[PoolPlan]:
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
    rows = (
        _uses(PromoNumber.objects.filter(pool_id__in=by_id, state=NumberState.ACTIVE))
        .order_by("pool_id")
        .values_list(*_USE_FIELDS)
        .iterator(chunk_size=5000)
    )
    numbers_of = {pool_id: list(group) for pool_id, group in groupby(rows, key=lambda row: row[0])}
    for pk, pool in by_id.items():
        verdict = pool_applicability(pool)
        plan = prune_decide(
            now=now,
            min_size=pool.min_size,
            last_overflow_at=pool.last_overflow_at,
            numbers=(_number_use(row, now) for row in numbers_of.pop(pk, ())),
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
) -> Iterator[PoolPruneResult]:
    """One month-end pass at `now`, pool by pool (lazy: consume it). `release` gets each pool's
    release orders after its transaction committed (and, at the end, the orders of earlier runs
    still waiting); without it the outbox's reconciliation sends them."""
    for month, pools in pools_due_for_prune(now=now):
        for plan in prune_plans(pools=pools.iterator(chunk_size=BATCH_POOLS), now=now):
            if dry_run:
                outcome = PruneOutcome.PRUNED if plan.removals else PruneOutcome.SKIPPED
                yield PoolPruneResult(plan, outcome, tuple(plan.removals), plan.plan.reason)
                continue
            result = _pool_prune_apply(plan, month=month, now=now, actor=actor, trigger=trigger)
            if result.orders and release is not None:
                release(list(result.orders))
            yield result
    if not dry_run and release is not None:
        waiting = list(
            carrier_orders_due(now=now)
            .filter(kind=OrderKind.RELEASE, trigger=Trigger.PRUNE)
            .select_related("number")
        )
        if waiting:
            release(waiting)


def _pool_prune_apply(
    plan: PoolPlan, *, month: date, now: datetime, actor: User | None, trigger: str
) -> PoolPruneResult:
    pool = plan.pool
    try:
        with transaction.atomic():
            removals = _still_unused(pool, plan.plan.removals, now)
            reason = plan.plan.reason
            if len(removals) < len(plan.plan.removals):
                reason += f"; {len(plan.plan.removals) - len(removals)} used since the plan was read, kept"
            outcome = PruneOutcome.PRUNED if removals else PruneOutcome.SKIPPED
            figures = {**plan.plan.figures, "month": f"{month:%Y-%m}", "local_date": str(plan.local_date)}
            MonthlyPrune.objects.create(
                account_id=pool.account_id,
                pool=pool,
                month=month,
                outcome=outcome,
                removed=len(removals),
                reason=reason[:300],
                figures={**figures, "removed_ids": [v.number.id for v in removals]},
                trigger=trigger,
                actor=actor,
                decided_at=now,
            )
            if removals:
                orders = numbers_release_begin(
                    pool=pool,
                    removals=[_removal(verdict, figures, now) for verdict in removals],
                    trigger=trigger,
                    actor=actor,
                    now=now,
                )
            else:
                orders = []
                ScalingEvent.objects.create(
                    account_id=pool.account_id,
                    pool=pool,
                    kind=EventKind.PRUNE_SKIPPED,
                    trigger=trigger,
                    reason=reason[:300],
                    figures=figures,
                    actor=actor,
                    created_at=now,
                )
    except IntegrityError:
        if not MonthlyPrune.objects.filter(pool=pool, month=month).exists():
            raise
        return PoolPruneResult(plan, "already", (), "another run decided this pool this month")
    return PoolPruneResult(plan, outcome, tuple(removals), reason, tuple(orders))


def _still_unused(pool: RingPool, planned: list[NumberVerdict], now: datetime) -> list[NumberVerdict]:
    """The planned removals that are still unused, locked so the hand-out cannot take them now."""
    if not planned:
        return []
    rows = (
        _uses(
            PromoNumber.objects.filter(
                pk__in=[v.number.id for v in planned], pool=pool, state=NumberState.ACTIVE
            )
        )
        .select_for_update(of=("self",))
        .order_by("pk")
        .values_list(*_USE_FIELDS)
    )
    fresh = {row[1]: _number_use(row, now) for row in rows}
    return [
        verdict
        for verdict in planned
        if verdict.number.id in fresh
        and number_use_rule(fresh[verdict.number.id], now=now)[0] == PruneRule.UNUSED
    ]


def _removal(verdict: NumberVerdict, figures: dict[str, Any], now: datetime) -> Removal:
    number = verdict.number
    return Removal(
        number.id,
        f"month-end prune: {verdict.reason}",
        {
            **figures,
            "rule": verdict.rule.value,
            "last_presented_at": _iso(number.last_presented_at),
            "last_called_at": _iso(number.last_called_at),
            "days_since_presented": _days_since(now, number.last_presented_at),
            "days_since_called": _days_since(now, number.last_called_at),
            "monthly_cost": str(number.monthly_cost),
        },
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _days_since(now: datetime, at: datetime | None) -> float | None:
    return round((now - at).total_seconds() / 86400, 2) if at else None
