"""The grow rule (SPEC §6): plain values in, a decision and its reason out (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from scaling.choices import GrowthMode
from scaling.spans import ago as _ago

# Beat sends the pass about every minute, a little early or late: a pass this close to the end of the
# interval counts as at it, so "one per five minutes" does not drift to one per six.
PASS_SLACK = timedelta(seconds=10)


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
    WAIT = "wait"  # overflowed, but the interval (or a retry back-off) is not over
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
# One number per visitor turned away since the last growth, at least one (the seed's step), at most
# ADAPTIVE_STEP_MAX per interval. A stray overflow costs one number, as under the seed's rule; a new
# pool's first rush or a campaign's spike is met in minutes instead of hours; the bound keeps a burst
# from buying a month of numbers for one hour of traffic (docs/policy-lab.md measures each; a bound
# growing with the pool, 1 % of it, cost more on busier traffic for no fewer visitors turned away).
ADAPTIVE_STEP_MAX = 5


def turned_away_grow_by(*, turned_away: int, size: int, room: int) -> int:
    """Numbers the adaptive policy adds for `turned_away` visitors since the last growth, with `room`
    numbers left below the pool's maximum size."""
    return max(0, min(max(1, turned_away), adaptive_step_bound(size), room))


def adaptive_step_bound(size: int) -> int:
    """The most numbers one interval of the adaptive policy adds to a pool of `size`."""
    return ADAPTIVE_STEP_MAX


def adaptive_decision(
    decision: GrowthDecision, *, turned_away: int, size: int, max_size: int
) -> GrowthDecision:
    """The adaptive policy's growth: the seed rule's decision (when, and whether the pool may), sized
    to the visitors turned away since the last growth instead of the pace's step."""
    if decision.verdict != GrowthVerdict.GROW:
        return decision
    grow_by = turned_away_grow_by(turned_away=turned_away, size=size, room=max_size - size)
    visitors = f"{turned_away} visitor{'' if turned_away == 1 else 's'} turned away since the last growth"
    bound = adaptive_step_bound(size)
    reason = decision.reason.split("; pace ")[0]
    reason += f"; adaptive: {visitors}, one number each, at most {bound} per interval"
    if grow_by < min(max(1, turned_away), bound):
        reason += f", {grow_by} left before the maximum size of {max_size}"
    return GrowthDecision(GrowthVerdict.GROW, grow_by, reason, decision.next_allowed_at)
