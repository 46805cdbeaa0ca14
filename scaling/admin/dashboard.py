"""Reads of the pool audit page in admin: is this pool the right size, and why did it change.

A fixed number of queries whatever the pool's size: counts and sums are aggregated in the database, and
only the first rows of the numbers and events lists are loaded (with links to the full lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from ringpools.choices import NumberRole, NumberState
from ringpools.figures import figures_window
from ringpools.models import PoolHourlyFigures, PromoNumber, RingPool
from scaling.applicability import Applicability, pool_applicability, pools_with_applicability
from scaling.models import ScalingEvent
from scaling.pruning.plans import last_used_expression

NUMBERS_SHOWN = 50
EVENTS_SHOWN = 15
# The windows of the page's figures, in days: the same windows as the health charts' (figures_window).
PERIODS = (("1 day", 1), ("7 days", 7))


@dataclass(frozen=True)
class PeriodFigures:
    label: str
    presentations: int  # numbers shown, the overflow answers included
    overflows: int
    calls: int
    numbers_presented: int  # rotating numbers shown at least once in the period
    size: int

    @property
    def utilization(self) -> float | None:
        """Share of the rotating numbers that were shown at least once: a pool whose every number is
        used is busy; numbers never shown are what the month-end prune takes."""
        return self.numbers_presented / self.size if self.size else None

    @property
    def overflow_rate(self) -> float | None:
        return self.overflows / self.presentations if self.presentations else None


@dataclass(frozen=True)
class PoolDashboard:
    pool: RingPool
    now: datetime
    size: int  # active rotating numbers
    overflow_number: PromoNumber | None
    in_use_now: int
    states: dict[str, int]  # numbers of the pool by state (choice value), released ones included
    monthly_cost: Decimal
    periods: tuple[PeriodFigures, ...]
    applicability: Applicability
    numbers: list[PromoNumber]  # the longest-unused first, NUMBERS_SHOWN at most
    numbers_total: int  # numbers not released
    events: list[ScalingEvent]


def pool_numbers_longest_unused(pool: RingPool) -> QuerySet[PromoNumber]:
    """The pool's numbers still in service, the one unused the longest first (the prune's order)."""
    return (
        PromoNumber.objects.filter(pool=pool)
        .exclude(state=NumberState.RELEASED)
        .annotate(last_used_at=last_used_expression())
        .order_by("last_used_at", "id")
    )


def pool_dashboard(*, pool: RingPool, now: datetime) -> PoolDashboard:
    numbers = PromoNumber.objects.filter(pool=pool)
    rotating = Q(state=NumberState.ACTIVE, role=NumberRole.ROTATING)
    presented = {
        f"presented_{i}": Count("id", filter=rotating & Q(last_presented_at__gte=now - timedelta(days=days)))
        for i, (_, days) in enumerate(PERIODS)
    }
    counts = numbers.aggregate(
        size=Count("id", filter=rotating),
        in_use=Count("id", filter=rotating & Q(busy_until__gt=now)),
        cost=Coalesce(
            Sum("monthly_cost", filter=~Q(state=NumberState.RELEASED)),
            Value(Decimal(0)),
            output_field=DecimalField(max_digits=12, decimal_places=2),
        ),
        **presented,
    )
    states = dict(numbers.order_by().values_list("state").annotate(n=Count("id")))
    overflow = numbers.filter(role=NumberRole.OVERFLOW, state=NumberState.ACTIVE).first()
    figures = PoolHourlyFigures.objects.filter(pool=pool).aggregate(
        **{
            f"{name}_{i}": Coalesce(Sum(name, filter=Q(hour__gte=figures_window(now, days)[0])), 0)
            for i, (_, days) in enumerate(PERIODS)
            for name in ("presentations", "overflows", "calls")
        }
    )
    periods = tuple(
        PeriodFigures(
            label=label,
            presentations=figures[f"presentations_{i}"],
            overflows=figures[f"overflows_{i}"],
            calls=figures[f"calls_{i}"],
            numbers_presented=counts[f"presented_{i}"],
            size=counts["size"],
        )
        for i, (label, _) in enumerate(PERIODS)
    )
    verdict = pool_applicability(pools_with_applicability(RingPool.objects.filter(pk=pool.pk)).get())
    return PoolDashboard(
        pool=pool,
        now=now,
        size=counts["size"],
        overflow_number=overflow,
        in_use_now=counts["in_use"],
        states=states,
        monthly_cost=counts["cost"],
        periods=periods,
        applicability=verdict,
        numbers=list(pool_numbers_longest_unused(pool)[:NUMBERS_SHOWN]),
        numbers_total=sum(n for state, n in states.items() if state != NumberState.RELEASED),
        events=list(ScalingEvent.objects.filter(pool=pool).select_related("number", "actor")[:EVENTS_SHOWN]),
    )
