"""The grow rule (SPEC §6): plain values in, a decision and its reason out (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from scaling.choices import GrowthMode
from scaling.spans import ago as _ago
from scaling.spans import span

# Beat sends the pass about every minute, a little early or late: a pass this close to the end of the
# interval counts as at it, so "one per five minutes" does not drift to one per six.
PASS_SLACK = timedelta(seconds=10)
# How far back "the visitors turned away since the last growth" reach (the grow pass reads that many
# hours of the hourly figures): a shortage is a day's, not a month's.
TURNED_AWAY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class GrowthPace:
    """The account's pace (SPEC §6; staff change it per account)."""

    mode: str = GrowthMode.STEP
    step: int = 1
    percent: int = 10
    cap_per_interval: int = 5
    interval: timedelta = timedelta(minutes=5)

    def describe(self) -> str:
        minutes = int(self.interval.total_seconds() // 60)
        if self.mode == GrowthMode.PERCENTAGE:
            return f"{self.percent}% of the pool per {minutes} min, at most {self.cap_per_interval}"
        return f"{self.step} per {minutes} min"


class GrowthVerdict(StrEnum):
    GROW = "grow"
    WAIT = "wait"  # overflowed, but the interval (or a retry back-off) is not over, or (adaptive) too few
    # visitors were turned away for a shortage: then no time is set, the next overflow may decide
    CAP = "cap"  # overflowed at the pool's maximum size
    IDLE = "idle"  # no overflow that counts


@dataclass(frozen=True)
class GrowthDecision:
    verdict: GrowthVerdict
    grow_by: int
    reason: str
    # When the pool may next grow, if it keeps overflowing (None: not before an overflow).
    next_allowed_at: datetime | None


def growth_decide(
    *,
    last_overflow_at: datetime | None,
    last_grown_at: datetime | None,
    scaling_on_since: datetime | None,
    size: int,
    max_size: int,
    pace: GrowthPace,
    now: datetime,
    retry_at: datetime | None = None,
) -> GrowthDecision:
    """Whether a pool grows now, by how many numbers, and in words why (SPEC §6, the seed article).

    A pool grows when an overflow was presented since its last growth and since auto-scaling was
    turned on for it — whether or not anyone called — at most once per interval of the pace.
    `size` counts the numbers it has or is buying; it never grows past `max_size`.
    """
    if scaling_on_since is None:
        return GrowthDecision(GrowthVerdict.IDLE, 0, "auto-scaling is not on for this pool", None)
    next_allowed = last_grown_at + pace.interval if last_grown_at is not None else None
    if last_overflow_at is None or last_overflow_at < scaling_on_since:
        reason = "no overflow since auto-scaling was turned on"
        return GrowthDecision(GrowthVerdict.IDLE, 0, reason, None)
    if last_grown_at is not None and last_overflow_at <= last_grown_at:
        reason = f"no overflow since the last growth {_ago(last_grown_at, now)}"
        return GrowthDecision(GrowthVerdict.IDLE, 0, reason, None)
    overflowed = f"overflow presented {_ago(last_overflow_at, now)}"
    if next_allowed is not None and now < next_allowed - PASS_SLACK:
        grew = _ago(last_grown_at, now) if last_grown_at is not None else "never"
        reason = f"{overflowed}; grew {grew}, pace {pace.describe()}"
        return GrowthDecision(GrowthVerdict.WAIT, 0, reason, next_allowed)
    if retry_at is not None:
        # A purchase of this pool failed and waits for its retry: it is the growth that was due, and
        # deciding more would only queue more purchases the carrier cannot serve either.
        reason = f"{overflowed}; a purchase failed at the carrier and is retried {_ago(retry_at, now)}"
        return GrowthDecision(GrowthVerdict.WAIT, 0, reason, retry_at)
    room = max_size - size
    if room <= 0:
        reason = f"{overflowed}, but the pool is at its maximum size of {max_size}"
        return GrowthDecision(GrowthVerdict.CAP, 0, reason, None)
    wanted = growth_step_size(size=size, pace=pace)
    grow_by = min(wanted, room)
    since = " since auto-scaling was turned on"
    if last_grown_at is not None:
        since = f", after the last growth {_ago(last_grown_at, now)}"
    reason = f"{overflowed}{since}; pace {pace.describe()}"
    if grow_by < wanted:
        reason += f"; {wanted} due, {grow_by} left before the maximum size of {max_size}"
    return GrowthDecision(GrowthVerdict.GROW, grow_by, reason, now + pace.interval)


def growth_step_size(*, size: int, pace: GrowthPace) -> int:
    """Numbers one interval adds to a pool of `size` (before the pool's maximum is applied)."""
    if pace.mode == GrowthMode.PERCENTAGE:
        return max(1, min(-(-size * pace.percent // 100), pace.cap_per_interval))  # rounded up
    return max(1, pace.step)


# --- The adaptive policy's growth ------------------------------------------------------------------
# Fast where the pool's size does not yet, or no longer, reflect its traffic; the account's pace
# beyond, and only for a shortage (docs/policy-lab.md measures each choice):
#  - in its first ADAPTIVE_LEARNING (from its creation) a pool's size is only where it started: it grows
#    by the numbers it was short — each visitor turned away in an interval would have held a number
#    for its lease, so was about lease / interval numbers short (Little's law) — at most
#    ADAPTIVE_STEP_MAX an interval: it learns its weekly cycle in days instead of weeks;
#  - below the most numbers it held at once in the last ADAPTIVE_MEMORY (numbers the renewal release
#    let go, or the month-end prune), it regrows the same way, up to that size: those visitors came
#    before;
#  - beyond it, it grows at the account's pace (the seed's one number per five minutes), and only when
#    the visitors turned away since the last growth are at least ADAPTIVE_SHORTAGE_PERCENT of the pool:
#    one visitor turned away by a large pool at its daily peak is chance, and every number bought for
#    a rush is billed a month.
ADAPTIVE_STEP_MAX = 5
ADAPTIVE_LEARNING = timedelta(days=7)
ADAPTIVE_MEMORY = timedelta(days=90)
ADAPTIVE_SHORTAGE_PERCENT = 4

Moment = TypeVar("Moment", bound=Any)


def largest_held(spans: Iterable[tuple[Moment, Moment | None]], *, since: Moment) -> int:
    """The most numbers held at once from `since` on, from each number's (acquired, released or None).
    A number released at the moment another was bought counts once. Values may be datetimes or plain
    seconds, as long as one call's values are of one kind."""
    held = 0
    changes: list[tuple[Moment, int]] = []
    for acquired, released in spans:
        if released is not None and released <= since:
            continue
        if acquired <= since:
            held += 1
        else:
            changes.append((acquired, 1))
        if released is not None:
            changes.append((released, -1))
    largest = held
    for _, change in sorted(changes, key=lambda item: (item[0], item[1])):  # releases first at a tie
        held += change
        largest = max(largest, held)
    return largest


def numbers_short(*, turned_away: int, lease: timedelta, interval: timedelta) -> int:
    """About how many numbers a pool was short when `turned_away` visitors were turned away since its
    last growth (an interval before, while it overflows): each would have held one for its lease
    (Little's law), at least one."""
    return max(1, math.ceil(turned_away * lease / interval))


def shortage_of(size: int) -> int:
    """Visitors turned away since the last growth that make a shortage for a pool of `size` beyond
    the most numbers it held lately (at least one)."""
    return max(1, -(-size * ADAPTIVE_SHORTAGE_PERCENT // 100))


def adaptive_decision(
    decision: GrowthDecision,
    *,
    turned_away: int,
    size: int,
    max_size: int,
    now: datetime,
    created_at: datetime,
    largest_recent: int,
    lease: timedelta,
    interval: timedelta,
) -> GrowthDecision:
    """The adaptive policy's growth: the seed rule's decision (when, and whether the pool may), sized
    by where the pool stands: learning its traffic (its first week from `created_at`), regrowing to
    the `largest_recent` numbers it held in the last ADAPTIVE_MEMORY (not read while it learns), or
    beyond it (the pace, for a shortage only)."""
    if decision.verdict != GrowthVerdict.GROW:
        return decision
    room = max_size - size
    visitors = f"{turned_away} visitor{'' if turned_away == 1 else 's'} turned away since the last growth"
    seen = f"{ADAPTIVE_MEMORY.days} days"
    base = decision.reason.split("; pace ")[0]
    short = numbers_short(turned_away=turned_away, lease=lease, interval=interval)
    minutes = f"a {span(lease)} lease per {span(interval)} interval each"
    shortfall = f"about {short} number{'' if short == 1 else 's'} short ({minutes})"
    if is_learning(created_at=created_at, now=now):
        wanted = min(ADAPTIVE_STEP_MAX, short)
        reason = (
            f"{base}; adaptive: {visitors}, {shortfall}, in the pool's first {ADAPTIVE_LEARNING.days} "
            f"days (created {_ago(created_at, now)}): it learns its traffic at up to "
            f"{ADAPTIVE_STEP_MAX} numbers per interval"
        )
    elif size < largest_recent:
        wanted = min(ADAPTIVE_STEP_MAX, short, largest_recent - size)
        reason = (
            f"{base}; adaptive: {visitors}, {shortfall}, and it held {largest_recent} numbers at once "
            f"in the last {seen}: it regrows towards them at up to {ADAPTIVE_STEP_MAX} per interval"
        )
    else:
        needed = shortage_of(size)
        beyond = f"it holds the {largest_recent} numbers it held at once in the last {seen}"
        if turned_away < needed:
            reason = (
                f"{base}; adaptive: {visitors}; {beyond}, and grows beyond them for a shortage of "
                f"{needed} ({ADAPTIVE_SHORTAGE_PERCENT}% of {size}, at least one)"
            )
            return GrowthDecision(GrowthVerdict.WAIT, 0, reason, None)
        pace = decision.reason.split("; pace ", 1)[1]  # the seed rule's step, held to the maximum size
        reason = (
            f"{base}; adaptive: {visitors}, a shortage beyond the {largest_recent} numbers it held at "
            f"once in the last {seen}; pace {pace}"
        )
        return GrowthDecision(GrowthVerdict.GROW, decision.grow_by, reason, decision.next_allowed_at)
    grow_by = min(wanted, room)
    if grow_by < wanted:
        reason += f"; {grow_by} left before the maximum size of {max_size}"
    return GrowthDecision(GrowthVerdict.GROW, grow_by, reason, decision.next_allowed_at)


def is_learning(*, created_at: datetime, now: datetime) -> bool:
    """Whether a pool created at `created_at` is still in its learning week."""
    return now < created_at + ADAPTIVE_LEARNING
