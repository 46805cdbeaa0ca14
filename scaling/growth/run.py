"""Auto-scaling growth (SPEC §6): a pass over the pools that overflowed, one decision per pool.

A pass, whether Beat's task, `manage.py grow_ringpools` or both at once:
 1. keeps `PoolGrowth.scaling_on_since` in step with where auto-scaling applies (a few set-based
    statements), so overflows from before auto-scaling was turned on for a pool never count;
 2. selects in SQL the pools that overflowed since their last growth — idle pools cost nothing;
 3. applies the pure rule (`policy.growth_decide`) to each and, for a pool that is due, takes the
    decision by compare-and-swap on `PoolGrowth.last_grown_at`: of two passes at once, one wins;
 4. buys the numbers through the carrier outbox, outside any transaction and without any lock held,
    so a purchase whose answer is lost is finished by reconciliation, never bought twice.
A carrier failure puts the decision back and retries it with back-off on the next passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from ringpools.choices import NumberRole, NumberState
from ringpools.figures import hour_of
from ringpools.models import PoolHourlyFigures, PromoNumber, RingPool
from scaling.applicability import applicable_pools, pool_applicability, pools_with_applicability
from scaling.audit import scaling_event_record
from scaling.choices import EventKind, OrderKind, OrderState, Trigger
from scaling.growth.rule import GrowthDecision, GrowthPace, GrowthVerdict, growth_decide
from scaling.models import AutoScalingSettings, CarrierOrder, PoolGrowth
from scaling.services import pool_number_add
from scaling.supply.carrier import Carrier, get_carrier
from scaling.supply.choice import MATCH_WORDS, NumberChoice
from scaling.supply.outbox import retry_delay

log = logging.getLogger(__name__)

# How far back the "overflows since the last growth" figure reads the hourly counts.
OVERFLOW_FIGURES_WINDOW = timedelta(hours=24)
# The plan lists at most this many pools that overflowed but do not auto-scale (with the reason).
EXPLAINED_OFF_LIMIT = 50


@dataclass
class PoolGrowthPlan:
    """One overflowing pool in a pass: the decision, the facts behind it, and what came of it."""

    pool: RingPool
    decision: GrowthDecision
    size: int
    overflows: int
    outcome: str = ""
    added: int = 0


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
) -> GrowthReport:
    """One grow pass at `now`. `dry_run` writes nothing and says what would be done; `explain` also
    counts the pools that are not due and lists those that overflowed where auto-scaling is off."""
    now = now or timezone.now()
    report = GrowthReport(now=now, dry_run=dry_run)
    if not dry_run:
        growth_states_sync(now=now)
    due = list(pools_due(now=now))
    overflows = _overflows_since_last_growth(due, now=now)
    for pool in due:
        plan = plan_for(pool, now=now, overflows=overflows.get(pool.pk, 0))
        report.plans.append(plan)
        if dry_run:
            plan.outcome = _would(plan)
            continue
        try:
            _carry_out(plan, now=now, carrier=carrier, trigger=trigger, actor=actor)
        except Exception as error:
            # One pool's trouble must not starve the others; the next pass decides for it afresh.
            log.exception("Growing pool %s failed", pool.pk)
            plan.outcome = f"error: {error}"
    if explain:
        _explain_the_rest(report)
    return report


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
    return queryset.select_related("growth", "account__auto_scaling_settings").annotate(
        size=Coalesce(Subquery(numbers.annotate(c=Count("id")).values("c").order_by()), 0),
        buying=Coalesce(Subquery(buying.annotate(c=Count("id")).values("c").order_by()), 0),
    )


def _overflows_since_last_growth(pools: list[RingPool], *, now: datetime) -> dict[int, int]:
    """Overflow presentations per pool in the hours since its last growth (hour granularity, at most
    a day back), from the hourly figures summed over shards: one query for all the due pools."""
    if not pools:
        return {}
    since = {pool.pk: hour_of(_counted_from(pool)) for pool in pools}
    rows = (
        PoolHourlyFigures.objects.filter(pool_id__in=since, hour__gte=hour_of(now - OVERFLOW_FIGURES_WINDOW))
        .values("pool_id", "hour")
        .annotate(overflows=Sum("overflows"))
        .order_by()
    )
    totals: dict[int, int] = {}
    for row in rows:
        if row["hour"] >= since[row["pool_id"]]:
            totals[row["pool_id"]] = totals.get(row["pool_id"], 0) + row["overflows"]
    return totals


def _counted_from(pool: RingPool) -> datetime:
    state = pool.growth
    return max(filter(None, (state.last_grown_at, state.scaling_on_since)))


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


def pool_size(pool: RingPool) -> int:
    """The active rotating numbers of a pool read through `with_growth_facts`."""
    return cast(GrowthCounts, pool).size


def plan_for(pool: RingPool, *, now: datetime, overflows: int) -> PoolGrowthPlan:
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
        retry_at=state.retry_at,
    )
    return PoolGrowthPlan(pool=pool, decision=decision, size=size, overflows=overflows)


def _would(plan: PoolGrowthPlan) -> str:
    verdict = plan.decision.verdict
    if verdict == GrowthVerdict.GROW:
        return f"would add {plan.decision.grow_by} ({plan.size} → {plan.size + plan.decision.grow_by})"
    if verdict == GrowthVerdict.CAP:
        return "would record 'maximum size reached'" if plan.pool.growth.capped_since is None else "capped"
    if verdict == GrowthVerdict.WAIT and plan.decision.next_allowed_at:
        return f"waits until {plan.decision.next_allowed_at:%H:%M:%S}"
    return "nothing to do"


def _carry_out(
    plan: PoolGrowthPlan, *, now: datetime, carrier: Carrier | None, trigger: str, actor: User | None
) -> None:
    verdict = plan.decision.verdict
    if verdict == GrowthVerdict.CAP:
        plan.outcome = _cap_record(plan, now=now, trigger=trigger, actor=actor)
    elif verdict == GrowthVerdict.GROW:
        if not _growth_take(plan.pool, now=now):
            plan.outcome = "another pass got there first"
            return
        _grow(plan, now=now, carrier=carrier or get_carrier(), trigger=trigger, actor=actor)
    else:
        plan.outcome = _would(plan).replace("would ", "")


def _growth_take(pool: RingPool, *, now: datetime) -> bool:
    """The decision record: move `last_grown_at` from the value this pass read to `now`. When no row
    changes, another pass took this growth first (or a retry back-off began meanwhile)."""
    state = pool.growth
    seen = Q(last_grown_at=state.last_grown_at) if state.last_grown_at else Q(last_grown_at__isnull=True)
    return (
        PoolGrowth.objects.filter(seen, pool_id=pool.pk)
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .update(last_grown_at=now, capped_since=None)
        == 1
    )


def _grow(plan: PoolGrowthPlan, *, now: datetime, carrier: Carrier, trigger: str, actor: User | None) -> None:
    pool, state = plan.pool, plan.pool.growth
    figures: dict[str, Any] = {
        "decision": plan.decision.reason,
        "last_overflow_at": _iso(pool.last_overflow_at),
        "last_grown_at": _iso(state.last_grown_at),
        "scaling_on_since": _iso(state.scaling_on_since),
        "overflows_since_last_growth": plan.overflows,
        "max_size": pool.max_size,
        "pace": pace_of(settings_of(pool)).describe(),
        "wanted_area_code": pool.area_code,
        "wanted_region": pool.region,
        "grow_by": plan.decision.grow_by,
    }
    in_flight, failure = 0, ""

    def reason(choice: NumberChoice) -> str:
        return f"grew ({MATCH_WORDS[choice.match]}): {plan.decision.reason}"

    for _ in range(plan.decision.grow_by):
        size_before = plan.size + plan.added + in_flight
        step = {**figures, "size_before": size_before, "size_after": size_before + 1}
        bought = pool_number_add(
            pool=pool, trigger=trigger, reason=reason, figures=step, actor=actor, carrier=carrier, now=now
        )
        if bought.number is not None:
            plan.added += 1
        elif bought.pending:
            in_flight += 1  # no answer: reconciliation finishes it (or finds it was not bought)
        else:
            failure = bought.failure
            break
    plan.outcome = f"added {plan.added}" + (f", {in_flight} awaiting the carrier" if in_flight else "")
    if plan.added or in_flight:
        if state.failures or state.retry_at:
            PoolGrowth.objects.filter(pool_id=pool.pk).update(failures=0, retry_at=None)
        if failure:
            plan.outcome += f"; then {failure}"
        return
    # Nothing bought: give the decision back, so the overflow still counts, and retry with back-off.
    failures = state.failures + 1
    retry_at = now + retry_delay(failures)
    PoolGrowth.objects.filter(pool_id=pool.pk, last_grown_at=now).update(
        last_grown_at=state.last_grown_at, failures=failures, retry_at=retry_at
    )
    plan.outcome = f"failed: {failure}; retry from {retry_at:%H:%M:%S}"


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
