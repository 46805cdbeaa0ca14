"""The policy lab's replay: one pool under a policy, minute by minute, through the product's own rules.

Each visitor is handed the free number of least `ringpools.order.handout_rank` (the hand-out order),
or turned away when none is free; each minute Beat's grow pass asks `growth_decide` (and, under the
adaptive policy, `adaptive_decision` for how many); on each month's last local day the prune asks
`prune_decide` at Beat's first run (00:15); under the adaptive policy each number's monthly renewal
asks `renewal_release_decide`. No rule is copied here: only the pool's state is kept, in heaps.

Billing: each number is billed per started 30 days from its purchase, until it is released.
Times are seconds from the replay's first instant; the rules get datetimes.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from ringpools.order import handout_rank
from scaling.growth.rule import (
    ADAPTIVE_MEMORY,
    TURNED_AWAY_WINDOW,
    GrowthPace,
    GrowthVerdict,
    adaptive_decision,
    growth_decide,
    largest_held,
)
from scaling.lab.traffic import Visitors
from scaling.pruning.rule import BILLING_PERIOD as BILLING_PERIOD_SPAN
from scaling.pruning.rule import RENEWAL_PEAK_WINDOW, NumberUse, prune_decide, renewal_release_decide

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
BILLING_PERIOD = BILLING_PERIOD_SPAN.total_seconds()
# Beat runs the month-end prune at minute 15 of each hour; the first run of the last day acts.
PRUNE_AT = timedelta(minutes=15)
RENEWAL_NOTICE = MINUTE  # a renewal decided in the minute before it falls due
MEMORY = ADAPTIVE_MEMORY.total_seconds()
WINDOW = TURNED_AWAY_WINDOW.total_seconds()


@dataclass(frozen=True)
class LabPolicy:
    """What a replay's pool is run under: the account's pace, and whether the adaptive policy is on."""

    name: str
    pace: GrowthPace = field(default_factory=GrowthPace)
    adaptive: bool = False
    min_size: int = 1
    max_size: int | None = None
    lease: timedelta = timedelta(minutes=30)  # the pool's lease (the adaptive policy sizes by it)


@dataclass
class ReplayResult:
    policy: str
    visitors: int = 0
    presentations: int = 0
    overflows: int = 0
    calls: int = 0
    number_months: int = 0
    number_days: float = 0.0
    added: Counter[date] = field(default_factory=Counter)  # per calendar month (its first day)
    removed: Counter[date] = field(default_factory=Counter)
    overflows_per_day: Counter[int] = field(default_factory=Counter)  # day of the replay (0: the first)
    start_size: int = 0
    final_size: int = 0
    largest_size: int = 0
    busiest_hour: int = 0  # the most numbers held at once
    days: float = 0.0
    elapsed: float = 0.0

    @property
    def overflow_pct(self) -> float:
        shown = self.overflows + self.presentations
        return 100.0 * self.overflows / shown if shown else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "overflow_pct": round(self.overflow_pct, 4),
            "number_months": self.number_months,
            "number_days": round(self.number_days, 1),
            "added": sum(self.added.values()),
            "removed": sum(self.removed.values()),
            "visitors": self.visitors,
            "overflows": self.overflows,
            "presentations": self.presentations,
            "calls": self.calls,
            "start_size": self.start_size,
            "final_size": self.final_size,
            "largest_size": self.largest_size,
            "busiest_hour": self.busiest_hour,
            "days": round(self.days, 2),
            "added_per_month": {f"{m:%Y-%m}": n for m, n in sorted(self.added.items())},
            "removed_per_month": {f"{m:%Y-%m}": n for m, n in sorted(self.removed.items())},
            "elapsed_seconds": round(self.elapsed, 2),
        }


class _Pool:
    """A pool's numbers as the rules see them, with its free numbers in two heaps of hand-out rank."""

    def __init__(self, *, cooldown: float) -> None:
        self.cooldown = cooldown
        self.acquired: list[float] = []
        self.busy_until: list[float | None] = []
        self.last_presented: list[float | None] = []
        self.last_called: list[float | None] = []
        self.released: list[float | None] = []
        self.active: list[bool] = []
        self.size = 0
        self.changes = 0  # numbers bought or released so far
        self._largest: tuple[int, float, int] | None = None  # (changes, valid until, the answer)
        self.rested: list[tuple[int, float, int]] = []  # hand-out ranks of rested free numbers
        self.held: list[tuple[float, int]] = []  # (busy_until, id): held now, or resting
        self.holds: list[float] = []  # ends of the holds running now (numbers in use)

    def add(self, at: float) -> int:
        number = len(self.acquired)
        self.acquired.append(at)
        self.busy_until.append(None)
        self.last_presented.append(None)
        self.last_called.append(None)
        self.released.append(None)
        self.active.append(True)
        self.size += 1
        self.changes += 1
        heapq.heappush(self.rested, self._rank(number, at))
        return number

    def release(self, number: int, at: float) -> None:
        self.active[number] = False
        self.released[number] = at
        self.size -= 1  # its heap entries are dropped when they surface
        self.changes += 1

    def _rank(self, number: int, now: float) -> tuple[int, float, int]:
        return handout_rank(
            number_id=number,
            acquired_at=self.acquired[number],
            busy_until=self.busy_until[number],
            rested_before=now - self.cooldown,
        )

    def in_use(self, now: float) -> int:
        holds = self.holds
        while holds and holds[0] <= now:
            heapq.heappop(holds)
        return len(holds)

    def claim(self, now: float, *, leaves: float, holds_until: float) -> int | None:
        """The number handed to a visitor arriving at `now`, or None (overflow)."""
        rested_before = now - self.cooldown
        held, rested, active = self.held, self.rested, self.active
        while held and held[0][0] <= rested_before:
            _, number = heapq.heappop(held)
            if active[number]:
                heapq.heappush(rested, self._rank(number, now))
        while rested and not active[rested[0][2]]:
            heapq.heappop(rested)
        while held and not active[held[0][1]]:
            heapq.heappop(held)
        candidates = []
        if rested:
            candidates.append(rested[0])
        if held and held[0][0] <= now:
            candidates.append(self._rank(held[0][1], now))
        if not candidates:
            return None
        chosen = min(candidates)
        number = chosen[2]
        if rested and chosen is rested[0]:
            heapq.heappop(rested)
        else:
            heapq.heappop(held)
        self.busy_until[number] = holds_until
        self.last_presented[number] = leaves
        heapq.heappush(held, (holds_until, number))
        heapq.heappush(self.holds, holds_until)
        return number

    def largest_recent(self, now: float) -> int:
        """The most numbers held at once in the last ADAPTIVE_MEMORY (`largest_held`, as the grow pass
        asks it). Kept until the pool changes or a release it counted leaves the window: the answer
        cannot change before."""
        cached = self._largest
        if cached is None or cached[0] != self.changes or now >= cached[1]:
            since = now - MEMORY
            value = largest_held(zip(self.acquired, self.released, strict=True), since=since)
            counted = [at for at in self.released if at is not None and at > since]
            self._largest = cached = (self.changes, min(counted) + MEMORY if counted else math.inf, value)
        return cached[2]

    def numbers(self) -> Iterator[int]:
        return (number for number, active in enumerate(self.active) if active)


def month_ends(*, start: datetime, seconds: float, tz: tzinfo) -> list[tuple[float, date]]:
    """The month-end prunes of the replay: (seconds from start, the month), at Beat's first run on
    each month's last local day."""
    ends: list[tuple[float, date]] = []
    local = start.astimezone(tz).date().replace(day=1)
    finish = start + timedelta(seconds=seconds)
    while True:
        following = (local + timedelta(days=32)).replace(day=1)
        last_day = following - timedelta(days=1)
        at = datetime(last_day.year, last_day.month, last_day.day, tzinfo=tz) + PRUNE_AT
        if at > finish:
            return ends
        if at >= start:
            ends.append(((at - start).total_seconds(), local))
        local = following


def replay(
    visitors: Visitors,
    *,
    policy: LabPolicy,
    start: datetime,
    tz: tzinfo,
    start_size: int = 5,
    cooldown_seconds: float = 900.0,
    progress: Callable[[float], None] | None = None,
    created_at: datetime | None = None,
) -> ReplayResult:
    """Play `visitors` through one pool of `start_size` numbers under `policy`. The pool was created
    at `created_at` (default: `start`, a new pool, in its learning week); auto-scaling is on for it
    from `start`."""
    created_at = created_at or start
    began = time.perf_counter()
    result = ReplayResult(policy=policy.name, start_size=start_size, days=visitors.seconds / DAY)
    pool = _Pool(cooldown=cooldown_seconds)
    renewals: list[tuple[float, int]] = []

    def moment(seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)

    def month_of(seconds: float) -> date:
        return moment(seconds).astimezone(tz).date().replace(day=1)

    def buy(at: float) -> None:
        number = pool.add(at)
        heapq.heappush(renewals, (at + BILLING_PERIOD, number))
        result.largest_size = max(result.largest_size, pool.size)

    for _ in range(start_size):
        buy(0.0)
    last_overflow: float | None = None
    last_grown: float | None = None
    turned_away: deque[float] = deque()  # when, since the last growth (the last TURNED_AWAY_WINDOW)
    peaks: deque[int] = deque(maxlen=int(RENEWAL_PEAK_WINDOW / timedelta(hours=1)))  # busiest per hour
    hour_peak = 0
    next_hour = HOUR
    prunes = month_ends(start=start, seconds=visitors.seconds, tz=tz)
    next_prune = 0
    calls: list[tuple[float, int]] = []
    max_size = policy.max_size if policy.max_size is not None else 10**9

    def calls_made(until: float) -> None:
        while calls and calls[0][0] <= until:
            at, called = heapq.heappop(calls)
            previous = pool.last_called[called]
            pool.last_called[called] = at if previous is None else max(previous, at)

    def tick(now: float) -> None:
        nonlocal last_grown, next_prune, hour_peak, next_hour
        calls_made(now)
        if now >= next_hour:
            peaks.append(hour_peak)
            result.busiest_hour = max(result.busiest_hour, hour_peak)
            hour_peak = pool.in_use(now)
            next_hour += HOUR
        if last_overflow is not None and (last_grown is None or last_overflow > last_grown):
            decision = growth_decide(
                last_overflow_at=moment(last_overflow),
                last_grown_at=moment(last_grown) if last_grown is not None else None,
                scaling_on_since=start,
                size=pool.size,
                max_size=max_size,
                pace=policy.pace,
                now=moment(now),
            )
            if policy.adaptive and decision.verdict == GrowthVerdict.GROW:
                while turned_away and turned_away[0] < now - WINDOW:  # the pass reads a day of figures
                    turned_away.popleft()
                decision = adaptive_decision(
                    decision,
                    turned_away=len(turned_away),
                    size=pool.size,
                    max_size=max_size,
                    now=moment(now),
                    created_at=created_at,
                    largest_recent=pool.largest_recent(now),
                    lease=policy.lease,
                    interval=policy.pace.interval,
                )
            if decision.verdict == GrowthVerdict.GROW:
                grow_by = decision.grow_by
                for _ in range(grow_by):
                    buy(now)
                result.added[month_of(now)] += grow_by
                last_grown = now
                turned_away.clear()
        if policy.adaptive:
            while renewals and renewals[0][0] <= now + RENEWAL_NOTICE:
                due, number = heapq.heappop(renewals)
                if not pool.active[number]:
                    continue
                if _renewal_release(pool, number, now, peaks, policy, moment):
                    pool.release(number, now)
                    result.removed[month_of(now)] += 1
                else:
                    heapq.heappush(renewals, (due + BILLING_PERIOD, number))
        while next_prune < len(prunes) and prunes[next_prune][0] <= now:
            _month_end_prune(pool, now, last_overflow, policy, moment, result, month_of)
            next_prune += 1

    arrives, leaves, holds_until, calls_at = (
        visitors.arrives.tolist(),
        visitors.leaves.tolist(),
        visitors.holds_until.tolist(),
        visitors.calls_at.tolist(),
    )
    next_minute = MINUTE
    report_every = max(len(arrives) // 20, 1)
    for index, arrival in enumerate(arrives):
        while next_minute <= arrival:
            tick(next_minute)
            next_minute += MINUTE
        if calls and calls[0][0] <= arrival:
            calls_made(arrival)
        number = pool.claim(arrival, leaves=leaves[index], holds_until=holds_until[index])
        if number is None:
            result.overflows += 1
            result.overflows_per_day[int(arrival // DAY)] += 1
            last_overflow = arrival
            turned_away.append(arrival)
            continue
        result.presentations += 1
        in_use = len(pool.holds)
        if in_use > hour_peak:
            hour_peak = pool.in_use(arrival)
        call = calls_at[index]
        if call == call:  # not NaN
            heapq.heappush(calls, (call, number))
            result.calls += 1
        if progress is not None and index % report_every == 0:
            progress(arrival / visitors.seconds)
    while next_minute <= visitors.seconds:
        tick(next_minute)
        next_minute += MINUTE
    result.visitors = len(arrives)
    result.busiest_hour = max(result.busiest_hour, hour_peak)
    end = float(visitors.seconds)
    for number, acquired in enumerate(pool.acquired):
        held_until = pool.released[number] if pool.released[number] is not None else end
        held = max(held_until - acquired, 0.0)  # type: ignore[operator]
        result.number_months += max(1, math.ceil(held / BILLING_PERIOD))
        result.number_days += held / DAY
    result.final_size = pool.size
    result.elapsed = time.perf_counter() - began
    return result


def _uses(pool: _Pool, number: int, now: float, moment: Callable[[float], datetime]) -> NumberUse:
    busy = pool.busy_until[number]
    presented, called = pool.last_presented[number], pool.last_called[number]
    return NumberUse(
        id=number,
        is_overflow_number=False,
        pinned=False,
        leased=busy is not None and busy > now,
        acquired_at=moment(pool.acquired[number]),
        last_presented_at=moment(presented) if presented is not None else None,
        last_called_at=moment(called) if called is not None else None,
    )


def _month_end_prune(
    pool: _Pool,
    now: float,
    last_overflow: float | None,
    policy: LabPolicy,
    moment: Callable[[float], datetime],
    result: ReplayResult,
    month_of: Callable[[float], date],
) -> None:
    plan = prune_decide(
        now=moment(now),
        min_size=policy.min_size,
        last_overflow_at=moment(last_overflow) if last_overflow is not None else None,
        numbers=[_uses(pool, number, now, moment) for number in pool.numbers()],
    )
    for verdict in plan.verdicts:
        if verdict.goes:
            pool.release(verdict.number.id, now)
            result.removed[month_of(now)] += 1


def _renewal_release(
    pool: _Pool,
    number: int,
    now: float,
    peaks: deque[int],
    policy: LabPolicy,
    moment: Callable[[float], datetime],
) -> bool:
    decision = renewal_release_decide(
        number=_uses(pool, number, now, moment),
        now=moment(now),
        size=pool.size,
        min_size=policy.min_size,
        peak_in_use=max(peaks, default=0),
    )
    return decision.goes
