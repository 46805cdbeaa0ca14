"""The demo's past, made by the product itself.

`seed_demo` creates the demo pools weeks back and hands this module a clock: simulated visitors
arrive minute by minute (busy office hours, quiet nights and weekends, a campaign's rush) and go
through the real hand-out; some of them call, through the real call recording; the grow pass runs
every simulated minute in which it has something to decide, as Beat would run it, and buys from
the demo carrier; the month-end prune runs on each month's last local day at Beat's minute and its
releases go to the carrier. Nothing is painted: every tile, chart, event, prune record and bill
agrees with the others because the code that writes them in production wrote them here, and every
rule the product enforces held while it did.

Only time is simulated: each service is told the moment it acts at (`now`), nothing is mocked.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import crontab

from config.schedules import SCHEDULES
from ringpools.calls import IncomingCall, call_record, promo_number_for
from ringpools.choices import PresentationKind
from ringpools.figures import handout_figures, hour_of
from ringpools.handout import present_number
from ringpools.models import RingPool
from ringpools.selectors import HandoutPool, handout_pool
from scaling.growth.rule import GrowthVerdict
from scaling.growth.run import ringpools_grow
from scaling.models import CarrierOrder
from scaling.pruning.run import ringpools_prune
from scaling.supply.carrier import Carrier
from scaling.supply.outbox import carrier_orders_run

MINUTE = timedelta(minutes=1)
HISTORY_DAYS = 35
# When Beat runs the month-end prune (config/schedules.py; Celery's time zone is UTC).
PRUNE_BEAT = crontab(**next(s for s in SCHEDULES if s.task == "scaling.tasks.prune_ringpools").crontab)
# Visitors per hour by local hour of day, as a share of the pool's busiest hour: quiet nights,
# busy office hours, a lunch dip.
DAY_CURVE = (
    [0.02] * 6
    + [0.1, 0.3, 0.6, 0.85, 1.0, 0.95, 0.75, 0.85, 0.95, 0.85, 0.65, 0.45]
    + [0.35, 0.25, 0.15]
    + [0.05] * 3
)
WEEKEND = 0.6
# A visit holds its number for the lease (the page renews it while it is open): one presentation.
# This share of the visitors shown a number call it while they hold it.
CALL_SHARE = 0.03
PAGE = "https://www.acme.example/spring-sale"
SOURCES = ("google", "newsletter", "facebook")


@dataclass(frozen=True)
class Rush:
    """A campaign's rush: `visitors_per_hour` from `start_hour` (local) for `hours`, `days_ago`."""

    days_ago: int
    start_hour: int
    hours: float
    visitors_per_hour: float


@dataclass(frozen=True)
class Story:
    """The traffic of one demo pool: its busiest ordinary hour, and a rush if it had one."""

    busiest_hour_visitors: float
    rush: Rush | None = None


@dataclass
class HistorySummary:
    """What the simulated weeks did, for `seed_demo` to print."""

    visitors: int = 0
    overflows: int = 0
    calls: int = 0
    grow_passes: int = 0
    numbers_added: int = 0
    numbers_pruned: int = 0
    prunes: list[str] = field(default_factory=list)


def history_start(now: datetime, days: int = HISTORY_DAYS) -> datetime:
    """When the demo pools were created: `days` before `now`, on the hour."""
    return hour_of(now - timedelta(days=days))


def visitors_per_hour(story: Story, local: datetime, *, local_now: datetime) -> float:
    """The mean arrival rate of the pool's visitors in the local hour starting at `local`."""
    rush = story.rush
    if rush is not None:
        day = (local_now - timedelta(days=rush.days_ago)).date()
        begins = datetime(day.year, day.month, day.day, rush.start_hour, tzinfo=local.tzinfo)
        if begins <= local < begins + timedelta(hours=rush.hours):
            return rush.visitors_per_hour
    weekday = 1.0 if local.weekday() < 5 else WEEKEND
    return story.busiest_hour_visitors * DAY_CURVE[local.hour] * weekday


def arrivals(
    story: Story, *, start: datetime, end: datetime, tz: ZoneInfo, rng: random.Random
) -> list[datetime]:
    """The moments visitors arrive between `start` and `end`: a Poisson process whose rate follows
    the pool's day (drawn minute by minute, so a rush may begin at any minute)."""
    local_now = end.astimezone(tz)
    moments = []
    minute = start
    while minute < end:
        rate = visitors_per_hour(story, minute.astimezone(tz), local_now=local_now) / 60
        for _ in range(_poisson(rate, rng)):
            moments.append(minute + timedelta(seconds=rng.uniform(0, 60)))
        minute += MINUTE
    return sorted(moments)


def _poisson(mean: float, rng: random.Random) -> int:
    """A Poisson draw (Knuth's method: the means here are below one per minute)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


@dataclass(order=True)
class _Visit:
    at: datetime
    pool_key: str = field(compare=False)
    serial: int = field(compare=False)


@dataclass(order=True)
class _Call:
    at: datetime
    number: str = field(compare=False)
    serial: int = field(compare=False)


def demo_history_replay(
    *, stories: dict[str, Story], start: datetime, end: datetime, carrier: Carrier, tz: ZoneInfo
) -> HistorySummary:
    """Play the pools' traffic from `start` to `end` through the hand-out, call recording, grow
    passes and month-end prunes, each at its simulated moment. The pools exist (created at `start`)."""
    summary = HistorySummary()
    visits = sorted(
        _Visit(at, key, serial)
        for key, story in stories.items()
        for serial, at in enumerate(arrivals(story, start=start, end=end, tz=tz, rng=random.Random(key)))
    )
    pools = {key: _shown(key) for key in stories}
    rng = random.Random("calls")
    calls: list[_Call] = []
    grow_due = True  # Beat's first pass notices that auto-scaling applies to the new pools
    next_visit = 0
    minute = start
    while minute < end:
        if minute.minute == 0:
            handout_figures.flush()  # the web processes' flusher, hours apart here
        if grow_due:
            grow_due = _grow_pass(minute, carrier, summary)
        if beat_runs(PRUNE_BEAT, minute):
            _prune_pass(minute, carrier, summary)
        until = minute + MINUTE
        while next_visit < len(visits) and visits[next_visit].at < until:
            visit = visits[next_visit]
            next_visit += 1
            _calls_due(calls, before=visit.at, rng=rng, summary=summary)
            overflowed = _visit(visit, pools[visit.pool_key], rng, calls, summary)
            grow_due = grow_due or overflowed
        _calls_due(calls, before=until, rng=rng, summary=summary)
        minute = until
    handout_figures.flush()
    return summary


def beat_runs(schedule: crontab, moment: datetime) -> bool:
    """Whether Beat sends the task of this crontab in the (UTC) minute starting at `moment`. The grow
    pass runs every minute; the replay runs it in the minutes where it has something to decide."""
    utc = moment.astimezone(UTC)
    fields: Any = schedule  # the expanded sets of a crontab, which the type stubs leave out
    return (
        utc.minute in fields.minute
        and utc.hour in fields.hour
        and utc.day in fields.day_of_month
        and utc.month in fields.month_of_year
        and utc.isoweekday() % 7 in fields.day_of_week
    )


def _shown(key: str) -> HandoutPool:
    pool = handout_pool(key)
    if pool is None:
        raise RingPool.DoesNotExist(key)
    return pool


def _visit(
    visit: _Visit, pool: HandoutPool, rng: random.Random, calls: list[_Call], summary: HistorySummary
) -> bool:
    """One visitor shown a number; maybe a call later. True when the visitor was turned away."""
    shown = present_number(
        pool=pool,
        visitor_id=f"demo-{visit.pool_key}-{visit.serial}",
        page_url=PAGE,
        params={"utm_source": rng.choice(SOURCES)},
        new_visitor=True,
        now=visit.at,
    )
    summary.visitors += 1
    overflowed = shown.kind != PresentationKind.PROMO
    summary.overflows += overflowed
    if rng.random() < CALL_SHARE and shown.kind != PresentationKind.DESTINATION:
        # While the lease holds the number (an overflow caller dials at once).
        holds = (shown.expires_at - visit.at) if shown.expires_at else timedelta(minutes=2)
        at = visit.at + holds * rng.uniform(0.05, 0.95)
        bisect.insort(calls, _Call(at, shown.number, visit.serial))
    return overflowed


def _calls_due(calls: list[_Call], *, before: datetime, rng: random.Random, summary: HistorySummary) -> None:
    """The calls made before `before`, recorded as the voice webhook records them."""
    while calls and calls[0].at < before:
        call = calls.pop(0)
        number = promo_number_for(call.number)
        if number is None:
            continue
        call_record(
            number=number,
            incoming=IncomingCall(
                call_sid=f"CA{rng.getrandbits(128):032x}",
                from_number=f"+131055501{call.serial % 100:02d}",
                to_number=call.number,
                status="completed",
            ),
            now=call.at,
        )
        summary.calls += 1


def _grow_pass(now: datetime, carrier: Carrier, summary: HistorySummary) -> bool:
    """Beat's grow pass at `now`. True while a pool waits for its pace (the next minute decides)."""
    handout_figures.flush()
    report = ringpools_grow(now=now, carrier=carrier)
    summary.grow_passes += 1
    summary.numbers_added += report.added
    return any(
        plan.decision.verdict == GrowthVerdict.WAIT and plan.decision.next_allowed_at is not None
        for plan in report.plans
    )


def _prune_pass(now: datetime, carrier: Carrier, summary: HistorySummary) -> None:
    """Beat's month-end prune at `now`; its releases go to the carrier at once, as the workers do."""
    handout_figures.flush()

    def release(order_ids: Sequence[int]) -> None:
        orders = list(CarrierOrder.objects.filter(pk__in=order_ids).order_by("pk"))
        carrier_orders_run(orders=orders, carrier=carrier, now=now)

    for result in ringpools_prune(now=now, release=release):
        summary.numbers_pruned += len(result.removed)
        summary.prunes.append(f"{result.plan.pool.name}: {result.outcome}, {len(result.removed)} removed")
