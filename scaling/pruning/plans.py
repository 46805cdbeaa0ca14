"""Every pool's month-end prune plan (SPEC §7), drawn by one function for the preview, the dry run
and the real run, so they cannot disagree.

`prune_plans` streams the active numbers of a batch of pools (never every number at once) and hands
each pool's facts to the pure rule `pruning.rule.prune_decide`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import BooleanField, CharField, Count, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import Cast, Coalesce, Greatest

from accounts.models import Account
from ringpools.choices import NumberRole, NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.applicability import pool_applicability, pools_with_applicability
from scaling.models import MonthlyPrune
from scaling.pruning.rule import (
    PRUNE_CALLED_WINDOW,
    PRUNE_PRESENTED_WINDOW,
    NumberUse,
    NumberVerdict,
    PrunePlan,
    prune_decide,
    prune_month,
)
from scaling.supply.outbox import StillUnused

# Pools planned per streamed read of their numbers: bounds memory whatever the number of pools.
BATCH_POOLS = 250

USE_FIELDS = (
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


def number_uses(numbers: QuerySet[PromoNumber], now: datetime) -> QuerySet[PromoNumber]:
    # The number as stored (E.164 text): parsing a million PhoneNumber objects would cost more than
    # the whole prune; it is formatted for people only where it is shown. Pinned and leased come as
    # booleans: fewer timestamps to decode per row.
    return numbers.annotate(
        e164=Cast("number", output_field=CharField()),
        is_pinned=ExpressionWrapper(Q(pinned_at__isnull=False), output_field=BooleanField()),
        leased_now=ExpressionWrapper(Q(busy_until__gt=now), output_field=BooleanField()),
    )


def last_used_expression() -> Coalesce:
    """`NumberUse.last_used_at` in SQL, for pages that list numbers in the prune's order: when the
    number was last presented or called, else when it came (GREATEST skips NULLs on PostgreSQL but
    not on SQLite, hence the inner Coalesces)."""
    presented, called = F("last_presented_at"), F("last_called_at")
    return Coalesce(Greatest(Coalesce(presented, called), Coalesce(called, presented)), F("acquired_at"))


def still_unused_at(now: datetime) -> StillUnused:
    """The prune's guard on its removals: unused as the rule reads it at `now` (pinned, leased,
    presented or called within its windows are in use)."""
    return StillUnused(
        free_at=now, presented_before=now - PRUNE_PRESENTED_WINDOW, called_before=now - PRUNE_CALLED_WINDOW
    )


def maybe_unused(numbers: QuerySet[PromoNumber], now: datetime) -> QuerySet[PromoNumber]:
    """Narrows the numbers read to those the rule might find unused (a superset: the rule decides;
    of numbers it found unused, exactly those still unused)."""
    return numbers.filter(still_unused_at(now).q())


def number_use_of(row: Sequence[Any], now: datetime) -> NumberUse:
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
class PoolPrunePlan:
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


def prune_plans(
    *, pools: Iterable[RingPool], now: datetime, complete: bool = True
) -> Iterator[PoolPrunePlan]:
    """The prune plan of each pool at `now` (pools read through `pools_with_applicability`, with
    their account). The preview, the dry run and the real run all read their plans here.

    `complete`: every number gets its verdict (the preview, the command). Otherwise only the numbers
    that might be unused are read, with each pool's count of rotating numbers: the same decision, at
    a fraction of the reading (the scheduled run).
    """
    pools = iter(pools)
    while batch := [pool for _, pool in zip(range(BATCH_POOLS), pools, strict=False)]:
        yield from _plan_batch(batch, now, complete)


def _plan_batch(batch: list[RingPool], now: datetime, complete: bool) -> Iterator[PoolPrunePlan]:
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
        active = maybe_unused(active, now)
    rows = number_uses(active, now).order_by("pool_id").values_list(*USE_FIELDS).iterator(chunk_size=5000)
    numbers_of = {pool_id: list(group) for pool_id, group in groupby(rows, key=lambda row: row[0])}
    for pk, pool in by_id.items():
        verdict = pool_applicability(pool)
        plan = prune_decide(
            now=now,
            min_size=pool.min_size,
            last_overflow_at=pool.last_overflow_at,
            numbers=(number_use_of(row, now) for row in numbers_of.pop(pk, ())),
            rotating=None if complete else rotating.get(pk, 0),
        )
        yield PoolPrunePlan(
            pool=pool,
            now=now,
            local_date=now.astimezone(tz_of[pk]).date(),
            month=months[pk],
            plan=plan,
            applies=verdict.applies,
            why_not="" if verdict.applies else verdict.reason,
            done=done.get(pk),
        )


def pools_for_plans(queryset: QuerySet[RingPool]) -> QuerySet[RingPool]:
    return pools_with_applicability(queryset).select_related("account").order_by("account_id", "name", "pk")


def pool_prune_preview(*, pool: RingPool, now: datetime) -> PoolPrunePlan:
    """What the month-end prune would do to this pool if the month ended now."""
    return next(prune_plans(pools=pools_for_plans(RingPool.objects.filter(pk=pool.pk)), now=now))


def account_prune_preview(*, account: Account, now: datetime) -> Iterator[PoolPrunePlan]:
    """The same for every pool of an account."""
    return prune_plans(pools=pools_for_plans(RingPool.objects.filter(account=account)), now=now)
