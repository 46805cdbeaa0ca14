"""The adaptive policy's release at renewal (docs/policy-lab.md): a number of a pool under the adaptive
policy whose monthly renewal is near is released when the pool keeps enough without it and nobody
can still be using it (scaling.pruning.rule.renewal_release_decide). Beat runs the pass every few
minutes; each renewal is decided in the RENEWAL_NOTICE before it falls due, and again on each run in
that time until the number goes or the renewal passes (a kept number is simply kept: no event).

A release goes through the outbox like the month-end prune's: the number leaves rotation in the
same statement that checks, once more, that it is still unused (StillUnused), with its release
order and its NUMBER_REMOVED event (trigger `renewal`, the rule's reason); the carrier is called
after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import groupby

from django.db import transaction
from django.db.models import Min, Q, QuerySet

from ringpools.choices import NumberRole, NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.applicability import applicable_pools
from scaling.choices import ScalingPolicy, Trigger
from scaling.health.series import peak_holds_per_hour
from scaling.pruning.rule import (
    BILLING_PERIOD,
    RENEWAL_IDLE,
    RENEWAL_PEAK_WINDOW,
    NumberUse,
    RenewalDecision,
    next_renewal,
    renewal_release_decide,
)
from scaling.supply.outbox import Removal, StillUnused, pools_numbers_release_begin

# Renewals falling due this soon are decided now (Beat runs the pass every 5 minutes).
RENEWAL_NOTICE = timedelta(minutes=15)


@dataclass(frozen=True)
class RenewalVerdict:
    """One renewing number: when it renews, the rule's decision, and its release order if it went."""

    pool: RingPool
    number: PromoNumber
    renews_at: datetime
    decision: RenewalDecision
    peak_in_use: int
    order_id: int | None = None


def adaptive_pools() -> QuerySet[RingPool]:
    """Pools where auto-scaling applies and the account runs the adaptive policy."""
    return applicable_pools().filter(account__auto_scaling_settings__policy=ScalingPolicy.ADAPTIVE)


def renewing_numbers(
    *, pools: QuerySet[RingPool], now: datetime, notice: timedelta = RENEWAL_NOTICE
) -> QuerySet[PromoNumber]:
    """The pools' active rotating numbers whose next renewal falls in (now, now + notice]: bought
    whole billing periods before a moment of that span (one range per period back to the oldest)."""
    numbers = PromoNumber.objects.filter(pool__in=pools, state=NumberState.ACTIVE, role=NumberRole.ROTATING)
    oldest = numbers.aggregate(at=Min("acquired_at"))["at"]
    if oldest is None:
        return numbers.none()
    spans = Q()
    periods = int((now - oldest) / BILLING_PERIOD) + 1
    for period in range(1, periods + 1):
        back = period * BILLING_PERIOD
        spans |= Q(acquired_at__gt=now - back, acquired_at__lte=now + notice - back)
    return numbers.filter(spans).select_related("pool__account").order_by("pool_id", "acquired_at", "id")


def renewals_decide(*, now: datetime) -> Iterator[RenewalVerdict]:
    """Each number of the adaptive pools renewing within RENEWAL_NOTICE, with the rule's decision at
    `now`, pool by pool. Writes nothing."""
    for _, group in groupby(renewing_numbers(pools=adaptive_pools(), now=now), key=lambda n: n.pool_id):
        numbers = list(group)
        assert numbers[0].pool is not None  # filtered by pool
        yield from _decide(numbers[0].pool, numbers, now=now)


def renewal_preview(*, pool: RingPool, now: datetime) -> list[RenewalVerdict]:
    """Every active rotating number of the pool, soonest renewal first, with what the rule would
    decide if it renewed now (for people: the prune preview), whatever the account's policy."""
    numbers = list(
        pool.numbers.filter(state=NumberState.ACTIVE, role=NumberRole.ROTATING).select_related("pool")
    )
    verdicts = list(_decide(pool, numbers, now=now))
    return sorted(verdicts, key=lambda verdict: (verdict.renews_at, verdict.number.pk))


def _decide(pool: RingPool, numbers: list[PromoNumber], *, now: datetime) -> Iterator[RenewalVerdict]:
    """The rule for each of `numbers` (of `pool`), the longest unused first, as the month-end prune;
    the releases it allows count against the pool's size as they are decided."""
    size = pool.numbers.filter(state=NumberState.ACTIVE, role=NumberRole.ROTATING).count()
    peak = max(peak_holds_per_hour(pool=pool, start=now - RENEWAL_PEAK_WINDOW, end=now), default=0)
    uses = sorted(
        ((number_use(n, now=now), n) for n in numbers), key=lambda pair: (pair[0].last_used_at, pair[0].id)
    )
    for use, number in uses:
        decision = renewal_release_decide(
            number=use, now=now, size=size, min_size=pool.min_size, peak_in_use=peak
        )
        if decision.goes:
            size -= 1
        yield RenewalVerdict(
            pool, number, next_renewal(acquired_at=number.acquired_at, now=now), decision, peak
        )


def number_use(number: PromoNumber, *, now: datetime) -> NumberUse:
    return NumberUse(
        id=number.pk,
        is_overflow_number=number.role == NumberRole.OVERFLOW,
        pinned=number.pinned_at is not None,
        leased=number.busy_until is not None and number.busy_until > now,
        acquired_at=number.acquired_at,
        last_presented_at=number.last_presented_at,
        last_called_at=number.last_called_at,
        label=str(number.number),
        monthly_cost=number.monthly_cost or Decimal(0),
    )


def renewals_release(
    *, now: datetime, release: Callable[[list[int]], object] | None = None
) -> list[RenewalVerdict]:
    """Decide every renewal due soon in the adaptive pools and release the numbers the rule lets go
    (only if still unused when the statement runs). `release` gets the release orders' ids after the
    commit; without it the outbox's reconciliation sends them."""
    verdicts = list(renewals_decide(now=now))
    going: dict[RingPool, list[Removal]] = {}
    for verdict in verdicts:
        if verdict.decision.goes:
            going.setdefault(verdict.pool, []).append(
                Removal(
                    verdict.number.pk,
                    verdict.decision.reason,
                    {
                        "rule": "adaptive: release at renewal",
                        "renews_at": verdict.renews_at.isoformat(),
                        "peak_in_use_7_days": verdict.peak_in_use,
                        "keeps_at_least": verdict.decision.need,
                    },
                )
            )
    if not going:
        return verdicts
    guard = StillUnused(free_at=now, presented_before=now - RENEWAL_IDLE, called_before=now - RENEWAL_IDLE)
    with transaction.atomic():
        queued = pools_numbers_release_begin(removals=going, trigger=Trigger.RENEWAL, now=now, only=guard)
        if release is not None and queued:
            ids = [item.order_id for item in queued]
            transaction.on_commit(lambda: release(ids))
    orders = {item.number_id: item.order_id for item in queued}
    return [
        RenewalVerdict(v.pool, v.number, v.renews_at, v.decision, v.peak_in_use, orders.get(v.number.pk))
        for v in verdicts
    ]
