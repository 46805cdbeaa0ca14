"""The "Next growth" panel of a pool's admin page: whether and when the pool may next grow, its latest
scaling events, and whether it has outgrown its recent needs (the month-end prune's input)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from django.db.models import Count, Q

from accounts.display import local_time_text
from ringpools.choices import NumberRole, NumberState
from ringpools.models import RingPool
from scaling.applicability import pool_applicability, pools_with_applicability
from scaling.growth.rule import GrowthDecision, GrowthPace, GrowthVerdict
from scaling.growth.run import pace_of, plan_for, pool_size, settings_of, with_growth_facts
from scaling.models import PoolGrowth, ScalingEvent
from scaling.pruning.rule import PRUNE_PRESENTED_WINDOW, PRUNE_SHARE_PERCENT

# A pool that has not overflowed for this long, with at most this share of its numbers in use, has
# outgrown its recent needs (a rush that is over): the month-end prune's input.
OUTGROWN_AFTER = timedelta(hours=24)
OUTGROWN_IN_USE_SHARE = 0.5


@dataclass(frozen=True)
class GrowthOutlook:
    applies: bool
    next_growth: str
    decision: GrowthDecision | None
    size: int
    max_size: int
    pace: str
    in_use: int
    unpresented: int
    outgrown: str
    events: list[ScalingEvent]


def growth_outlook(*, pool: RingPool, now: datetime, events: int = 10) -> GrowthOutlook:
    """What the pool's admin page says about growth: whether and when it may next grow, and why."""
    pool = with_growth_facts(pools_with_applicability(RingPool.objects.filter(pk=pool.pk))).get()
    verdict = pool_applicability(pool)
    pace = pace_of(settings_of(pool))
    state = getattr(pool, "growth", None)
    decision = None
    if not verdict.applies:
        next_growth = f"never while auto-scaling is off for it: {verdict.reason}"
    elif state is None or state.scaling_on_since is None:
        next_growth = "after the next grow pass notices auto-scaling is on, at the first overflow after it"
    else:
        decision = plan_for(pool, now=now, overflows=0).decision
        next_growth = _next_growth_words(decision, state, pace, now, zone=pool.account.timezone)
    usage = pool.numbers.filter(state=NumberState.ACTIVE, role=NumberRole.ROTATING).aggregate(
        in_use=Count("id", filter=Q(busy_until__gt=now)),
        unpresented=Count(
            "id",
            filter=Q(last_presented_at__isnull=True) | Q(last_presented_at__lt=now - PRUNE_PRESENTED_WINDOW),
        ),
    )
    return GrowthOutlook(
        applies=verdict.applies,
        next_growth=next_growth,
        decision=decision,
        size=pool_size(pool),
        max_size=pool.max_size,
        pace=pace.describe(),
        in_use=usage["in_use"],
        unpresented=usage["unpresented"],
        outgrown=_outgrown_words(pool, now=now, in_use=usage["in_use"], unpresented=usage["unpresented"]),
        events=list(ScalingEvent.objects.filter(pool=pool).select_related("number", "actor")[:events]),
    )


def _next_growth_words(
    decision: GrowthDecision, state: PoolGrowth, pace: GrowthPace, now: datetime, *, zone: tzinfo | str
) -> str:
    """When the pool may next grow, in words; clock times in the account's zone, named."""
    if decision.verdict == GrowthVerdict.GROW:
        return f"at the next grow pass (within a minute): by {decision.grow_by} — {decision.reason}"
    if decision.verdict == GrowthVerdict.WAIT and decision.next_allowed_at is not None:
        return f"at {local_time_text(decision.next_allowed_at, zone)} — {decision.reason}"
    if decision.verdict == GrowthVerdict.WAIT:
        return f"when more visitors are turned away — {decision.reason}"
    if decision.verdict == GrowthVerdict.CAP:
        return f"not until its maximum size is raised or numbers are removed — {decision.reason}"
    earliest = state.last_grown_at + pace.interval if state.last_grown_at else None
    if earliest and earliest > now:
        return f"at the first overflow from {local_time_text(earliest, zone)} ({decision.reason})"
    return f"at the next overflow ({decision.reason})"


def _outgrown_words(pool: RingPool, *, now: datetime, in_use: int, unpresented: int) -> str:
    size = pool_size(pool)
    if size <= pool.min_size:
        return ""
    if pool.last_overflow_at is not None and pool.last_overflow_at > now - OUTGROWN_AFTER:
        return ""
    if in_use > size * OUTGROWN_IN_USE_SHARE:
        return ""
    quiet = (
        f"no overflow since {local_time_text(pool.last_overflow_at, pool.account.timezone)}"
        if pool.last_overflow_at
        else "it never overflowed"
    )
    return (
        f"The pool has outgrown its recent needs: {quiet}, {in_use} of {size} numbers in use now, "
        f"{unpresented} not shown to anyone in {PRUNE_PRESENTED_WINDOW.days} days. The month-end prune "
        f"removes unused numbers (at most {PRUNE_SHARE_PERCENT}% a month, never below the minimum size)."
    )
