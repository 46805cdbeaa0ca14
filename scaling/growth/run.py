"""Auto-scaling growth (SPEC §6): a pass over the pools that overflowed, one decision per pool.

A pass, whether Beat's task, `manage.py grow_ringpools` or both at once, in any number:
 1. keeps `PoolGrowth.scaling_on_since` in step with where auto-scaling applies (a few set-based
    statements), so overflows from before auto-scaling was turned on for a pool never count;
 2. selects in SQL the pools that overflowed since their last growth — idle pools cost nothing;
 3. applies the pure rule (`growth_decide`) to each and, for a pool that is due, takes the decision
    by compare-and-swap on `PoolGrowth.last_grown_at` in the same transaction as its purchase orders
    (of two passes at once, one wins; a process killed at any point leaves both or neither);
 4. hands the orders to the carrier workers (Beat's pass) or buys them itself (the command), outside
    any transaction and without any lock held. An order stays pending until bought: a carrier error,
    a time-out or a dead process is retried with back-off, a purchase whose answer was lost is found
    at the carrier under its request id, never bought twice; while one waits, the pool decides no more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from ringpools.choices import NumberRole, NumberState
from ringpools.figures import hour_of
from ringpools.models import PoolHourlyFigures, PromoNumber, RingPool
from scaling.applicability import applicable_pools, pool_applicability, pools_with_applicability
from scaling.audit import scaling_event_record
from scaling.choices import EventKind, OrderKind, OrderState, ScalingPolicy, Trigger
from scaling.growth.rule import (
    ADAPTIVE_MEMORY,
    TURNED_AWAY_WINDOW,
    GrowthDecision,
    GrowthPace,
    GrowthVerdict,
    adaptive_decision,
    growth_decide,
    is_learning,
    largest_held,
)
from scaling.models import AutoScalingSettings, CarrierOrder, PoolGrowth
from scaling.services import pool_numbers_order
from scaling.supply.carrier import Carrier, get_carrier
from scaling.supply.outbox import MATCH_SLOT, carrier_orders_run

log = logging.getLogger(__name__)

# How far back the "overflows since the last growth" figure reads the hourly counts.
OVERFLOW_FIGURES_WINDOW = TURNED_AWAY_WINDOW
# The plan lists at most this many pools that overflowed but do not auto-scale (with the reason).
EXPLAINED_OFF_LIMIT = 50


@dataclass
class PoolGrowthPlan:
    """One overflowing pool in a pass: the decision, the facts behind it, and what came of it."""

    pool: RingPool
    decision: GrowthDecision
    size: int
    overflows: int  # overflow presentations in the hours since the last growth
    turned_away: int = 0  # visitors turned away since the last growth
    turned_away_this_hour: int = 0
    outcome: str = ""
    added: int = 0
    queued: int = 0  # purchases handed to the carrier workers
    order_ids: list[int] = field(default_factory=list)


@dataclass
class GrowthReport:
    now: datetime
    dry_run: bool
    plans: list[PoolGrowthPlan] = field(default_factory=list)
    idle: int = 0  # pools where auto-scaling applies that did not overflow since their last growth
    off: list[tuple[RingPool, str]] = field(default_factory=list)  # overflowed, but auto-scaling is off
    off_total: int = 0  # pools where auto-scaling does not apply

    @property
    def added(self) -> int:
        return sum(plan.added for plan in self.plans)

    @property
    def queued(self) -> int:
        return sum(plan.queued for plan in self.plans)


# Hands a pass's purchase orders to the carrier workers (scaling.tasks); without one, a pass buys here.
Dispatch = Callable[[list[int]], None]


def pace_of(settings: AutoScalingSettings | None) -> GrowthPace:
    if settings is None:
        return GrowthPace()
    return GrowthPace(
        mode=settings.growth_mode,
        step=settings.growth_step,
        percent=settings.growth_percent,
        cap_per_interval=settings.growth_cap_per_interval,
        interval=timedelta(minutes=settings.growth_interval_minutes),
    )


def ringpools_grow(
    *,
    now: datetime | None = None,
    carrier: Carrier | None = None,
    dry_run: bool = False,
    explain: bool = False,
    trigger: str = Trigger.GROWTH,
    actor: User | None = None,
    dispatch: Dispatch | None = None,
) -> GrowthReport:
    """One grow pass at `now`. `dry_run` writes nothing and says what would be done; `explain` also
    counts the pools that are not due and lists those that overflowed where auto-scaling is off.
    `dispatch` receives each due pool's purchase orders (Beat's pass queues them for the carrier
    workers); without it the pass carries them out itself, pool after pool."""
    now = now or timezone.now()
    report = GrowthReport(now=now, dry_run=dry_run)
    if not dry_run:
        growth_states_sync(now=now)
    due = list(pools_due(now=now))
    counted = overflows_since_last_growth(due, now=now)
    for pool in due:
        plan = plan_for(
            pool,
            now=now,
            overflows=counted.overflows.get(pool.pk, 0),
            turned_away=counted.turned_away.get(pool.pk, 0),
        )
        plan.turned_away_this_hour = counted.turned_away_this_hour.get(pool.pk, 0)
        report.plans.append(plan)
        if dry_run:
            plan.outcome = _would(plan)
            continue
        try:
            _carry_out(plan, now=now, carrier=carrier, trigger=trigger, actor=actor, dispatch=dispatch)
        except Exception as error:
            # One pool's trouble must not starve the others; the next pass decides for it afresh.
            log.exception("Growing pool %s failed", pool.pk)
            plan.outcome = f"error: {error}"
    if dispatch is not None:
        _hand_over(report.plans, dispatch)
    if explain:
        _explain_the_rest(report)
    return report


def _hand_over(plans: list[PoolGrowthPlan], dispatch: Dispatch) -> None:
    """The pass's orders to the carrier workers, the orders of one area together, so that a task's
    orders share one search at the carrier (scaling.supply.choice.SharedSearch). Each pool's orders
    were committed with its decision: an order that never reaches a worker (this process dies here)
    is handed out by the next reconcile pass."""
    areas: dict[tuple[str, str, str], list[int]] = {}
    for plan in plans:
        if plan.order_ids:
            pool = plan.pool
            areas.setdefault((pool.number_type, pool.area_code, pool.region), []).extend(plan.order_ids)
    for ids in areas.values():
        dispatch(ids)


# --- 1. When auto-scaling was turned on ------------------------------------------------------------


def growth_states_sync(*, now: datetime) -> None:
    """Record when auto-scaling started to apply to each pool, and forget it where it stopped.

    The facts behind "applies" are spread over the account (feature), its settings (scope and the
    selected campaigns or destination numbers) and the pool (flag, active); a pass sees all of them at
    once, so it is the one place that notices the switch, to within one pass (about a minute).
    """
    applicable = applicable_pools().values("pk")
    with transaction.atomic():
        PoolGrowth.objects.filter(scaling_on_since__isnull=False).exclude(pool_id__in=applicable).update(
            scaling_on_since=None, capped_since=None
        )
        PoolGrowth.objects.filter(scaling_on_since__isnull=True, pool_id__in=applicable).update(
            scaling_on_since=now
        )
    # Pools seen for the first time: one row each, once (concurrent passes may both insert: ignored).
    first_seen = list(applicable_pools().filter(growth__isnull=True).values_list("pk", flat=True))
    PoolGrowth.objects.bulk_create(
        [PoolGrowth(pool_id=pk, scaling_on_since=now) for pk in first_seen],
        ignore_conflicts=True,
        batch_size=1000,
    )


# --- 2. The pools that overflowed since their last growth ------------------------------------------


def pools_due(*, now: datetime, queryset: QuerySet[RingPool] | None = None) -> QuerySet[RingPool]:
    """Pools where auto-scaling applies with an overflow that counts (since auto-scaling was turned on
    and since their last growth), with their growth state, pace, size and purchases in flight.

    Whether the interval is over is the rule's business: these are "due" in the plan's sense."""
    return (
        with_growth_facts(applicable_pools(queryset))
        .filter(
            growth__scaling_on_since__isnull=False,
            last_overflow_at__isnull=False,
            last_overflow_at__gte=F("growth__scaling_on_since"),
            last_overflow_at__lte=now,
        )
        .filter(Q(growth__last_grown_at__isnull=True) | Q(last_overflow_at__gt=F("growth__last_grown_at")))
        .order_by("pk")
    )


def with_growth_facts(queryset: QuerySet[RingPool]) -> QuerySet[RingPool]:
    numbers = PromoNumber.objects.filter(
        pool=OuterRef("pk"), state=NumberState.ACTIVE, role=NumberRole.ROTATING
    ).values("pool")
    buying = CarrierOrder.objects.filter(
        pool=OuterRef("pk"), kind=OrderKind.PURCHASE, state=OrderState.PENDING, role=NumberRole.ROTATING
    ).values("pool")
    failed = CarrierOrder.objects.filter(
        pool=OuterRef("pk"), kind=OrderKind.PURCHASE, state=OrderState.PENDING, role=NumberRole.ROTATING
    ).exclude(last_error="")
    return queryset.select_related("growth", "account__auto_scaling_settings").annotate(
        size=Coalesce(Subquery(numbers.annotate(c=Count("id")).values("c").order_by()), 0),
        buying=Coalesce(Subquery(buying.annotate(c=Count("id")).values("c").order_by()), 0),
        retrying=Exists(failed),
        retry_at=Subquery(
            failed.order_by(F("next_attempt_at").desc(nulls_last=True)).values("next_attempt_at")[:1]
        ),
    )


@dataclass(frozen=True)
class OverflowCounts:
    """What a pass reads of the hourly figures for its due pools (one query for all of them)."""

    overflows: dict[int, int]  # overflow presentations in the hours since the last growth
    turned_away: dict[int, int]  # visitors turned away since the last growth (exact: see _answered)
    turned_away_this_hour: dict[int, int]


def overflows_since_last_growth(pools: list[RingPool], *, now: datetime) -> OverflowCounts:
    """Per pool, at most a day back, summed over shards: the overflow presentations in the hours
    since its last growth (keep-alives of waiting visitors included), and the visitors turned away
    since it — the figures count whole hours, so the visitors of the last growth's hour that it
    answered (recorded with it) are not counted again."""
    counts = OverflowCounts({}, {}, {})
    if not pools:
        return counts
    window = hour_of(now - OVERFLOW_FIGURES_WINDOW)
    since = {pool.pk: hour_of(_counted_from(pool)) for pool in pools}
    answered = {pool.pk: _answered(pool, window=window) for pool in pools}
    current = hour_of(now)
    rows = (
        PoolHourlyFigures.objects.filter(pool_id__in=since, hour__gte=window)
        .values("pool_id", "hour")
        .annotate(overflows=Sum("overflows"), turned_away=Sum("turned_away"))
        .order_by()
    )
    turned_away: dict[int, int] = {}
    for row in rows:
        pk = row["pool_id"]
        if row["hour"] >= since[pk]:
            counts.overflows[pk] = counts.overflows.get(pk, 0) + row["overflows"]
            turned_away[pk] = turned_away.get(pk, 0) + row["turned_away"]
        if row["hour"] == current:
            counts.turned_away_this_hour[pk] = row["turned_away"]
    counts.turned_away.update({pk: max(total - answered[pk], 0) for pk, total in turned_away.items()})
    return counts


def _counted_from(pool: RingPool) -> datetime:
    state = pool.growth
    return max(filter(None, (state.last_grown_at, state.scaling_on_since)))


def _answered(pool: RingPool, *, window: datetime) -> int:
    """Visitors turned away in the hour counted from that the last growth already answered (none
    when counting starts elsewhere, or that hour is older than the figures read)."""
    state = pool.growth
    grown = state.last_grown_at
    counted_from_growth = grown is not None and _counted_from(pool) == grown and hour_of(grown) >= window
    return state.overflows_answered if counted_from_growth else 0


# --- 3. Decide, take the decision, buy -------------------------------------------------------------


def settings_of(pool: RingPool) -> AutoScalingSettings | None:
    try:
        return pool.account.auto_scaling_settings
    except AutoScalingSettings.DoesNotExist:
        return None


class GrowthCounts(Protocol):
    """The annotations `with_growth_facts` puts on a pool."""

    size: int  # active rotating numbers
    buying: int  # rotating purchases in flight
    retrying: bool  # a purchase in flight failed: decide nothing more until it is bought
    retry_at: datetime | None  # when it is tried again (none while it is being tried)


def pool_size(pool: RingPool) -> int:
    """The active rotating numbers of a pool read through `with_growth_facts`."""
    return cast(GrowthCounts, pool).size


def plan_for(
    pool: RingPool, *, now: datetime, overflows: int, turned_away: int | None = None
) -> PoolGrowthPlan:
    """The pool's growth decision now (`pool` read through `with_growth_facts`). `turned_away`: the
    visitors turned away since its last growth, read from the hourly figures when not given."""
    state = pool.growth
    counts = cast(GrowthCounts, pool)
    size = counts.size + counts.buying
    decision = growth_decide(
        last_overflow_at=pool.last_overflow_at,
        last_grown_at=state.last_grown_at,
        scaling_on_since=state.scaling_on_since,
        size=size,
        max_size=pool.max_size,
        pace=pace_of(settings_of(pool)),
        now=now,
        # A failed purchase being tried again right now (no retry time: it is claimed) waits too.
        retry_at=(counts.retry_at or now) if counts.retrying else None,
    )
    current = settings_of(pool)
    if (
        current is not None
        and current.policy == ScalingPolicy.ADAPTIVE
        and decision.verdict == GrowthVerdict.GROW
    ):
        if turned_away is None:
            turned_away = overflows_since_last_growth([pool], now=now).turned_away.get(pool.pk, 0)
        decision = adaptive_decision(
            decision,
            turned_away=turned_away,
            size=size,
            max_size=pool.max_size,
            now=now,
            created_at=pool.created_at,
            # Not read while the pool learns: spare the query.
            largest_recent=0
            if is_learning(created_at=pool.created_at, now=now)
            else largest_recent(pool, now=now),
            lease=timedelta(seconds=pool.lease_seconds),
            interval=pace_of(current).interval,
        )
    return PoolGrowthPlan(
        pool=pool, decision=decision, size=size, overflows=overflows, turned_away=turned_away or 0
    )


def largest_recent(pool: RingPool, *, now: datetime) -> int:
    """The most rotating numbers `pool` held at once in the last ADAPTIVE_MEMORY (the adaptive policy
    regrows fast up to it)."""
    since = now - ADAPTIVE_MEMORY
    spans = PromoNumber.objects.filter(pool=pool, role=NumberRole.ROTATING, acquired_at__lte=now).filter(
        Q(released_at__isnull=True) | Q(released_at__gt=since)
    )
    return largest_held(spans.values_list("acquired_at", "released_at"), since=since)


def _would(plan: PoolGrowthPlan) -> str:
    verdict = plan.decision.verdict
    if verdict == GrowthVerdict.GROW:
        return f"would add {plan.decision.grow_by} ({plan.size} → {plan.size + plan.decision.grow_by})"
    if verdict == GrowthVerdict.CAP:
        return "would record 'maximum size reached'" if plan.pool.growth.capped_since is None else "capped"
    if verdict == GrowthVerdict.WAIT and plan.decision.next_allowed_at:
        return f"waits until {plan.decision.next_allowed_at.astimezone(UTC):%H:%M:%S} UTC"
    if verdict == GrowthVerdict.WAIT:
        return "waits for more visitors turned away"
    return "nothing to do"


def _carry_out(
    plan: PoolGrowthPlan,
    *,
    now: datetime,
    carrier: Carrier | None,
    trigger: str,
    actor: User | None,
    dispatch: Dispatch | None,
) -> None:
    verdict = plan.decision.verdict
    if verdict == GrowthVerdict.CAP:
        plan.outcome = _cap_record(plan, now=now, trigger=trigger, actor=actor)
    elif verdict == GrowthVerdict.GROW:
        orders = _growth_take(plan, now=now, trigger=trigger, actor=actor)
        if orders is None:
            plan.outcome = "another pass got there first"
        elif dispatch is not None:
            plan.order_ids = [order.pk for order in orders]  # handed over at the end of the pass
            plan.queued = len(orders)
            plan.outcome = f"queued {_numbers(len(orders))} to buy"
        else:
            _buy_here(plan, orders, now=now, carrier=carrier or get_carrier())
    else:
        plan.outcome = _would(plan).replace("would ", "")


def _growth_take(
    plan: PoolGrowthPlan, *, now: datetime, trigger: str, actor: User | None
) -> list[CarrierOrder] | None:
    """The decision and its purchase orders, in one transaction: move `last_grown_at` from the value
    this pass read to `now` (compare-and-swap: when no row changes, another pass took this growth
    first) and queue one order per number due. A process killed at any point leaves both or neither;
    the orders then stay pending until bought (or the pool no longer wants them), whatever fails."""
    pool, state = plan.pool, plan.pool.growth
    seen = Q(last_grown_at=state.last_grown_at) if state.last_grown_at else Q(last_grown_at__isnull=True)
    figures: dict[str, Any] = {
        "decision": plan.decision.reason,
        "last_overflow_at": _iso(pool.last_overflow_at),
        "last_grown_at": _iso(state.last_grown_at),
        "scaling_on_since": _iso(state.scaling_on_since),
        "overflows_since_last_growth": plan.overflows,
        "turned_away_since_last_growth": plan.turned_away,
        "max_size": pool.max_size,
        "pace": pace_of(settings_of(pool)).describe(),
        "wanted_area_code": pool.area_code,
        "wanted_region": pool.region,
        "grow_by": plan.decision.grow_by,
    }
    steps = [
        {**figures, "size_before": plan.size + i, "size_after": plan.size + i + 1}
        for i in range(plan.decision.grow_by)
    ]
    with transaction.atomic():
        taken = PoolGrowth.objects.filter(seen, pool_id=pool.pk).update(
            last_grown_at=now, capped_since=None, overflows_answered=plan.turned_away_this_hour
        )
        if not taken:
            return None
        return pool_numbers_order(
            pool=pool,
            figures=steps,
            trigger=trigger,
            reason=f"grew ({MATCH_SLOT}): {plan.decision.reason}",
            actor=actor,
            now=now,
        )


def _buy_here(plan: PoolGrowthPlan, orders: list[CarrierOrder], *, now: datetime, carrier: Carrier) -> None:
    """`manage.py grow_ringpools` and the tests: the orders carried out in this process, in turn."""
    ended = carrier_orders_run(orders=orders, carrier=carrier, now=now)
    plan.added = sum(1 for order in ended if order.state == OrderState.DONE and order.number_id is not None)
    waiting = [order for order in ended if order.state == OrderState.PENDING]
    plan.outcome = f"added {plan.added}"
    if waiting:
        why = waiting[0].last_error or "awaiting the carrier"
        plan.outcome += f", {len(waiting)} to retry ({why})"


def _numbers(count: int) -> str:
    return f"{count} number" + ("" if count == 1 else "s")


def _cap_record(plan: PoolGrowthPlan, *, now: datetime, trigger: str, actor: User | None) -> str:
    """One `cap_reached` event per episode: from the first overflow at the maximum size until the pool
    grows again (its maximum raised, or numbers pruned)."""
    pool = plan.pool
    with transaction.atomic():
        if not PoolGrowth.objects.filter(pool_id=pool.pk, capped_since__isnull=True).update(capped_since=now):
            return "capped (already recorded)"
        scaling_event_record(
            account_id=pool.account_id,
            pool_id=pool.pk,
            kind=EventKind.CAP_REACHED,
            trigger=trigger,
            reason=plan.decision.reason,
            figures={
                "size": plan.size,
                "max_size": pool.max_size,
                "last_overflow_at": _iso(pool.last_overflow_at),
                "overflows_since_last_growth": plan.overflows,
            },
            actor=actor,
            now=now,
        )
    return "recorded 'maximum size reached'"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# --- The rest of the plan: pools not due, and why auto-scaling is off --------------------------------


def _explain_the_rest(report: GrowthReport) -> None:
    applicable = applicable_pools()
    applies = applicable.count()
    report.idle = applies - len(report.plans)
    report.off_total = RingPool.objects.count() - applies
    overflowed = RingPool.objects.filter(
        last_overflow_at__gte=report.now - OVERFLOW_FIGURES_WINDOW, last_overflow_at__lte=report.now
    ).exclude(pk__in=applicable.values("pk"))
    for pool in pools_with_applicability(overflowed).order_by("pk")[:EXPLAINED_OFF_LIMIT]:
        report.off.append((pool, pool_applicability(pool).reason))
