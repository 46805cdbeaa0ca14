"""A pool's recommended size and its what-ifs, from its own last 30 days (issue 22, docs/policy-lab.md).

The recommendation: the most numbers the pool's visitors held at once in any hour of the last 30
days, plus RECOMMENDED_HEADROOM_PERCENT. When the pool turned visitors away, what they held is not
in the leases (they were shown the overflow number): the last 30 days are then replayed from the
pool's hourly figures through the policy lab (scaling.lab.replay, the product's own rules) on a pool
large enough for all of them, and its busiest hour is the need.

The what-ifs replay the same 30 days at other sizes (growth and pruning off: the size held fixed)
and under the other policy from today's size: what they would have turned away and cost. Visitors
per hour are those shown a number (the hour's presentations less its overflows) plus those turned
away on arrival, each holding its number for a 4-minute visit plus the pool's lease.
Cached per pool for the hour, and anew when the pool's size or the account's settings change; the
cache is Django's (per process unless CACHES names a shared one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.core.cache import cache
from django.db.models import Sum

from ringpools.choices import NumberRole, NumberState
from ringpools.figures import figures_window
from ringpools.models import PoolHourlyFigures, RingPool
from scaling.choices import ScalingPolicy
from scaling.growth.rule import ADAPTIVE_LEARNING
from scaling.growth.run import pace_of, settings_of
from scaling.health.series import peak_holds_per_hour
from scaling.lab.replay import LabPolicy, ReplayResult, replay
from scaling.lab.traffic import TrafficModel, visitors_from_hours

WINDOW_DAYS = 30
RECOMMENDED_HEADROOM_PERCENT = 15
UNBOUNDED = 100_000
CACHE_SECONDS = 3600


@dataclass(frozen=True)
class WhatIf:
    label: str
    turned_away: int
    visitors: int
    number_months: int
    cost: Decimal  # what the numbers of those 30 days would have been billed

    @property
    def turned_away_pct(self) -> float:
        return 100.0 * self.turned_away / self.visitors if self.visitors else 0.0


@dataclass(frozen=True)
class Recommendation:
    size: int  # today's rotating numbers
    recommended: int
    busiest_hour: int
    turned_away: int  # in the last 30 days, as recorded
    visitors: int
    reason: str
    what_ifs: tuple[WhatIf, ...]


def pool_recommendation(*, pool: RingPool, now: datetime) -> Recommendation:
    """The pool's recommended size with its reasoning in words, and the what-ifs (cached per hour)."""
    current = settings_of(pool)
    changed = f"{current.updated_at:%Y%m%d%H%M%S%f}" if current is not None else "-"
    costs = list(
        pool.numbers.filter(state=NumberState.ACTIVE, role=NumberRole.ROTATING).values_list(
            "monthly_cost", flat=True
        )
    )
    size = len(costs)
    hour = figures_window(now, WINDOW_DAYS)[1]
    # Per hour (the figures change by the hour), and anew when the settings or the size change.
    key = f"ringpool-recommendation:{pool.pk}:{hour:%Y%m%d%H}:{size}:{pool.max_size}:{changed}"
    cached = cache.get(key)
    if isinstance(cached, Recommendation):
        return cached
    cost_each = (sum(costs, Decimal(0)) / size) if size else Decimal(0)
    recommendation = _recommend(pool=pool, now=now, size=size, cost_each=cost_each)
    cache.set(key, recommendation, CACHE_SECONDS)
    return recommendation


def _recommend(*, pool: RingPool, now: datetime, size: int, cost_each: Decimal) -> Recommendation:
    start, end = figures_window(now, WINDOW_DAYS)
    rows = dict(
        PoolHourlyFigures.objects.filter(pool=pool, hour__gte=start, hour__lt=end)
        .values("hour")
        .annotate(shown=Sum("presentations"), away=Sum("overflows"))
        .values_list("hour", "shown")
    )
    turned_away = (
        PoolHourlyFigures.objects.filter(pool=pool, hour__gte=start, hour__lt=end).aggregate(
            n=Sum("overflows")
        )["n"]
        or 0
    )
    hours = [start + timedelta(hours=h) for h in range(WINDOW_DAYS * 24)]
    counts = [int(rows.get(hour, 0) or 0) for hour in hours]
    model = TrafficModel(lease_minutes=pool.lease_seconds / 60, seed=pool.pk)
    visitors = visitors_from_hours(counts, model)
    held = max(peak_holds_per_hour(pool=pool, start=start, end=end), default=0)
    zone = ZoneInfo(str(pool.account.timezone))  # its month ends

    def fixed(at: int) -> ReplayResult:
        policy = LabPolicy(f"{at} numbers", min_size=at, max_size=at)
        return replay(visitors, policy=policy, start=start, tz=zone, start_size=max(at, 1))

    if turned_away:
        # Room for everyone: no more can be held at once than arrived within a hold (the lease and
        # a long visit) of each other.
        span = 2 + -(-pool.lease_seconds // 3600)
        room = max((sum(counts[h : h + span]) for h in range(len(counts))), default=1)
        busiest = max(fixed(min(max(room, size, 1), UNBOUNDED)).busiest_hour, held)
    else:
        busiest = held
    wanted = max(pool.min_size, 1, -(-busiest * (100 + RECOMMENDED_HEADROOM_PERCENT) // 100))
    recommended = min(wanted, pool.max_size)
    reason = _reason(
        busiest=busiest, wanted=wanted, recommended=recommended, size=size, turned_away=turned_away
    )

    what_ifs = []
    for at in sorted({recommended, size, max(1, size // 2), size * 2} - {0}):
        result = fixed(at)
        label = f"{at} number{'' if at == 1 else 's'}" + (
            " (today)" if at == size else " (recommended)" if at == recommended else ""
        )
        what_ifs.append(_what_if(label, result, cost_each))
    current = settings_of(pool)
    other = (
        ScalingPolicy.SEED
        if current is not None and current.policy == ScalingPolicy.ADAPTIVE
        else ScalingPolicy.ADAPTIVE
    )
    policy = LabPolicy(
        str(ScalingPolicy(other).label).split(" (")[0],
        pace=pace_of(current),
        adaptive=other == ScalingPolicy.ADAPTIVE,
        min_size=pool.min_size,
        max_size=pool.max_size,
        lease=timedelta(seconds=pool.lease_seconds),
    )
    # From today's size, which the pool has learnt: no learning week in the what-if.
    learnt = start - ADAPTIVE_LEARNING
    result = replay(visitors, policy=policy, start=start, tz=zone, start_size=max(size, 1), created_at=learnt)
    what_ifs.append(_what_if(f"{policy.name} policy, from {size} numbers", result, cost_each))
    return Recommendation(size, recommended, busiest, turned_away, len(visitors), reason, tuple(what_ifs))


def _what_if(label: str, result: ReplayResult, cost_each: Decimal) -> WhatIf:
    months = result.number_months
    return WhatIf(
        label, result.overflows, result.visitors, months, (cost_each * months).quantize(Decimal("0.01"))
    )


def _reason(*, busiest: int, wanted: int, recommended: int, size: int, turned_away: int) -> str:
    numbers = "number" if busiest == 1 else "numbers"
    if turned_away:
        said = (
            f"your pool turned {turned_away:,} visitor{'' if turned_away == 1 else 's'} away in the last "
            f"{WINDOW_DAYS} days; replayed with room for all, its busiest hour held {busiest} {numbers} "
            "at once"
        )
    else:
        said = f"your busiest hour in the last {WINDOW_DAYS} days held {busiest} {numbers} at once"
    if wanted > recommended:
        said += (
            f"; {wanted} would keep {RECOMMENDED_HEADROOM_PERCENT} % headroom, but the maximum size is "
            f"{recommended}: raise it, or send this pool less traffic"
        )
    else:
        said += f"; {recommended} keeps {RECOMMENDED_HEADROOM_PERCENT} % headroom"
        if recommended == size:
            said += ", the size it has"
        elif recommended < size:
            said += f": {size - recommended} fewer than today"
        else:
            said += f": {recommended - size} more than today"
    return said[0].upper() + said[1:] + "."
