"""A believable past for the demo pools, so their health charts have something to show.

The past is replayed through the real services (growth after a rush, a month-end prune), each told
the moment it acts at (`now`), so the audit trail is the one those services write; visits are plain
facts (leases and hourly figures, as the hand-out records them). Demo only: `seed_demo` calls this
for pools it has just created.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Max

from ringpools.choices import NumberRole, NumberState
from ringpools.figures import hour_of
from ringpools.models import Lease, PoolHourlyFigures, PromoNumber, RingPool
from scaling.choices import Trigger
from scaling.services import NumberPurchase, pool_number_add, pool_number_remove

HOUR = timedelta(hours=1)
HISTORY_DAYS = 35
# Share of a pool's numbers in use by local hour of day: quiet nights, busy office hours.
DAY_CURVE = (
    [0.05] * 6
    + [0.15, 0.3, 0.5, 0.65, 0.75, 0.8, 0.7, 0.75, 0.8, 0.7, 0.55, 0.4]
    + [0.3, 0.2, 0.15]
    + [0.1] * 3
)


@dataclass(frozen=True)
class Story:
    """What happened to one demo pool: a rush that made it grow, or an idle number pruned at month end."""

    rush_days_ago: int | None = None  # a rush from 10:00 to 12:00 local time, this many days ago
    prune_one: bool = False  # the last day of last month, one never-used number was pruned
    traffic: float = 1.0  # share of the usual visitors: a quiet pool looks too big


def history_start(now: datetime) -> datetime:
    return hour_of(now - timedelta(days=HISTORY_DAYS))


def demo_history_write(*, pool: RingPool, story: Story, now: datetime) -> None:
    """Visits, overflows, calls and scaling events of the pool from its (backdated) creation to now."""
    rng = random.Random(pool.key)
    tz = ZoneInfo(str(pool.account.timezone))
    idle = _idle_number(pool) if story.prune_one else None
    actions = _actions(pool=pool, story=story, now=now, tz=tz, idle=idle)
    leases: list[Lease] = []
    figures: list[PoolHourlyFigures] = []
    hour = history_start(now) + HOUR
    numbers = _usable_numbers(pool, idle)
    while hour + HOUR < now:
        if actions and actions[0][0] < hour + HOUR:
            while actions and actions[0][0] < hour + HOUR:
                moment, action = actions.pop(0)
                action(moment)
            numbers = _usable_numbers(pool, idle)
        local = hour.astimezone(tz)
        rush = story.rush_days_ago is not None and _in_rush(local, now.astimezone(tz), story.rush_days_ago)
        share = (
            1.0 if rush else DAY_CURVE[local.hour] * story.traffic * (0.8 if local.weekday() >= 5 else 1.0)
        )
        busy = max(0, min(len(numbers), round(share * len(numbers) + rng.uniform(-0.6, 0.6))))
        for number in rng.sample(numbers, busy):
            started = hour + timedelta(minutes=rng.randint(0, 20))
            leases.append(
                Lease(
                    pool=pool,
                    number=number,
                    visitor_id=secrets.token_urlsafe(12),
                    page_url="https://www.acme.example/spring-sale",
                    params={"utm_source": rng.choice(["google", "newsletter", "facebook"])},
                    started_at=started,
                    expires_at=started + timedelta(minutes=rng.randint(5, 35)),
                )
            )
        overflows = rng.randint(6, 14) if rush else 0
        calls = sum(1 for _ in range(busy) if rng.random() < 0.2)
        if busy or overflows:
            figures.append(
                PoolHourlyFigures(
                    pool=pool,
                    hour=hour,
                    shard=0,
                    presentations=busy + rng.randint(0, busy),
                    overflows=overflows,
                    calls=calls,
                )
            )
        hour += HOUR
    Lease.objects.bulk_create(leases, batch_size=500)
    PoolHourlyFigures.objects.bulk_create(figures, batch_size=500)
    _facts_from_history(pool)


def _usable_numbers(pool: RingPool, idle: PromoNumber | None) -> list[PromoNumber]:
    return list(
        PromoNumber.objects.filter(pool=pool, role=NumberRole.ROTATING, state=NumberState.ACTIVE).exclude(
            pk__in=[idle.pk] if idle is not None else []
        )
    )


def _idle_number(pool: RingPool) -> PromoNumber | None:
    return (
        PromoNumber.objects.filter(pool=pool, role=NumberRole.ROTATING, state=NumberState.ACTIVE)
        .order_by("-id")
        .first()
    )


def _in_rush(local: datetime, local_now: datetime, days_ago: int) -> bool:
    return local.date() == (local_now - timedelta(days=days_ago)).date() and 10 <= local.hour < 12


def _actions(
    *, pool: RingPool, story: Story, now: datetime, tz: ZoneInfo, idle: PromoNumber | None
) -> list[tuple[datetime, Callable[[datetime], Any]]]:
    """What the services do to the pool, and when: each action is called with its moment."""
    actions: list[tuple[datetime, Callable[[datetime], Any]]] = []
    if story.rush_days_ago is not None:
        day = (now.astimezone(tz) - timedelta(days=story.rush_days_ago)).date()
        rush = datetime(day.year, day.month, day.day, 10, 0, tzinfo=tz)
        for step in range(4):  # one number per five minutes while the overflow lasts (SPEC §6)
            actions.append(
                (
                    rush + timedelta(minutes=6 + 5 * step),
                    partial(_grow, pool, overflows=3 + step),
                )
            )
    if idle is not None:
        local_now = now.astimezone(tz)
        month_end = datetime(local_now.year, local_now.month, 1, 23, 30, tzinfo=tz) - timedelta(days=1)
        actions.append(
            (
                month_end,
                lambda moment: pool_number_remove(
                    number=idle,
                    trigger=Trigger.PRUNE,
                    reason="unused: not presented in 5 days and not called in 10 days",
                    figures={"rule": "not presented in 5 days, not called in 10 days", "cap": "20%"},
                    now=moment,
                ),
            )
        )
    return sorted(actions, key=lambda item: item[0])


def _grow(pool: RingPool, moment: datetime, *, overflows: int) -> NumberPurchase:
    return pool_number_add(
        pool=pool,
        trigger=Trigger.GROWTH,
        reason="overflow presented since the last growth",
        figures={"overflows_since_last_growth": overflows},
        now=moment,
    )


def _facts_from_history(pool: RingPool) -> None:
    """Last-presented times as the hand-out would have left them, so month-end pruning sees use."""
    last = dict(
        Lease.objects.filter(pool=pool)
        .values("number_id")
        .annotate(at=Max("started_at"))
        .values_list("number_id", "at")
    )
    for number_id, at in last.items():
        # A fact the hand-out keeps (like it, no history entry), not a setting.
        PromoNumber.objects.filter(pk=number_id).update(last_presented_at=at)
    overflowed = PoolHourlyFigures.objects.filter(pool=pool, overflows__gt=0).aggregate(at=Max("hour"))["at"]
    if overflowed is not None:
        RingPool.objects.filter(pk=pool.pk).update(last_overflow_at=overflowed + timedelta(minutes=55))
