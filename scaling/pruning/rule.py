"""The month-end prune rule (SPEC §7): plain values in, a plan and its reasons out (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import Any

# SPEC §7 and the seed article: on the last day of each month in the account's time zone, a pool that
# presented no overflow in the past 30 days loses its unused numbers, longest-unused first, at most
# 20% of its rotating numbers (rounded down) and never below its minimum size. "In the past N days"
# includes its first instant: a number presented exactly 5 days ago was presented in the past 5 days.

PRUNE_OVERFLOW_WINDOW = timedelta(days=30)
PRUNE_PRESENTED_WINDOW = timedelta(days=5)
PRUNE_CALLED_WINDOW = timedelta(days=10)
PRUNE_SHARE_PERCENT = 20


class PruneRule(StrEnum):
    """Why a number goes or stays; the preview and the audit trail show these."""

    UNUSED = "unused"
    OVERFLOW_RECENT = "overflow_recent"
    OVERFLOW_NUMBER = "overflow_number"
    PINNED = "pinned"
    LEASED = "leased"
    PRESENTED = "presented"
    CALLED = "called"
    NEW = "new"
    CAP = "cap"
    MIN_SIZE = "min_size"


# Each rule in words, for the places that count numbers by rule (the command, admin).
PRUNE_RULE_WORDS = {
    PruneRule.UNUSED: "unused",
    PruneRule.OVERFLOW_RECENT: f"the pool overflowed in the past {PRUNE_OVERFLOW_WINDOW.days} days",
    PruneRule.OVERFLOW_NUMBER: "the overflow number",
    PruneRule.PINNED: "pinned by staff",
    PruneRule.LEASED: "held by a visitor now",
    PruneRule.PRESENTED: f"presented in the past {PRUNE_PRESENTED_WINDOW.days} days",
    PruneRule.CALLED: f"called in the past {PRUNE_CALLED_WINDOW.days} days",
    PruneRule.NEW: "new, not yet presented",
    PruneRule.CAP: f"held back by the {PRUNE_SHARE_PERCENT}% cap",
    PruneRule.MIN_SIZE: "held back by the minimum size",
}


@dataclass(frozen=True)
class NumberUse:
    """The facts about one active number of a pool that the prune rule reads (plus what to show)."""

    id: int
    is_overflow_number: bool
    pinned: bool
    leased: bool
    acquired_at: datetime
    last_presented_at: datetime | None
    last_called_at: datetime | None
    label: str = ""
    monthly_cost: Decimal = Decimal(0)

    @property
    def display(self) -> str:
        """The number as people read it, e.g. "(805) 555-0100" (formatted only where it is shown)."""
        from ringpools.phone import display

        return display(self.label) if self.label else ""

    @property
    def last_used_at(self) -> datetime:
        """When it was last presented or called; a number never used has been idle since it came."""
        used = [at for at in (self.last_presented_at, self.last_called_at) if at is not None]
        return max(used) if used else self.acquired_at


@dataclass(frozen=True)
class NumberVerdict:
    number: NumberUse
    goes: bool
    rule: PruneRule
    reason: str


@dataclass(frozen=True)
class PrunePlan:
    """What the month-end prune does to one pool: whether it scales down, why, and each number's fate."""

    prunes: bool
    reason: str
    figures: dict[str, Any]
    verdicts: tuple[NumberVerdict, ...]

    @property
    def removals(self) -> list[NumberVerdict]:
        return [verdict for verdict in self.verdicts if verdict.goes]

    @property
    def kept(self) -> list[NumberVerdict]:
        return [verdict for verdict in self.verdicts if not verdict.goes]


def _days(span: timedelta) -> str:
    days = span.total_seconds() / 86400
    return f"{days:.1f} days" if days < 100 else f"{days:.0f} days"


def _ago(now: datetime, at: datetime | None, what: str) -> str:
    return f"never {what}" if at is None else f"{what} {_days(now - at)} ago"


def number_use_rule(number: NumberUse, *, now: datetime) -> tuple[PruneRule, str]:
    """Whether one number is unused now, or the first protection that keeps it, in words."""
    presented = _ago(now, number.last_presented_at, "presented")
    called = _ago(now, number.last_called_at, "called")
    if number.is_overflow_number:
        return PruneRule.OVERFLOW_NUMBER, "the pool's overflow number"
    if number.pinned:
        return PruneRule.PINNED, "pinned by staff"
    if number.leased:
        return PruneRule.LEASED, "leased to a visitor right now"
    if number.last_presented_at is not None and number.last_presented_at >= now - PRUNE_PRESENTED_WINDOW:
        return PruneRule.PRESENTED, f"{presented} (within {PRUNE_PRESENTED_WINDOW.days} days)"
    if number.last_called_at is not None and number.last_called_at >= now - PRUNE_CALLED_WINDOW:
        return PruneRule.CALLED, f"{called} (within {PRUNE_CALLED_WINDOW.days} days)"
    if number.last_presented_at is None and number.acquired_at >= now - PRUNE_PRESENTED_WINDOW:
        # A number that came in days ago has not had the chance to be presented for 5 days.
        return PruneRule.NEW, f"acquired {_days(now - number.acquired_at)} ago, not yet presented"
    return PruneRule.UNUSED, f"{presented}, {called}"


def prune_decide(
    *,
    now: datetime,
    min_size: int,
    last_overflow_at: datetime | None,
    numbers: Iterable[NumberUse],
    rotating: int | None = None,
) -> PrunePlan:
    """The month-end prune of one pool: `numbers` are its active numbers (rotating and overflow).

    A caller that only needs the removals may pass fewer numbers — any set that holds every unused
    one — with `rotating`, the count of the pool's active rotating numbers: the decision is the same.
    """
    numbers = list(numbers)
    if rotating is None:
        rotating = sum(1 for number in numbers if not number.is_overflow_number)
    figures: dict[str, Any] = {"rotating": rotating, "min_size": min_size}
    if last_overflow_at is not None and last_overflow_at >= now - PRUNE_OVERFLOW_WINDOW:
        reason = (
            f"overflow presented {_days(now - last_overflow_at)} ago "
            f"(within {PRUNE_OVERFLOW_WINDOW.days} days): no scale-down"
        )
        figures["days_since_overflow"] = round((now - last_overflow_at).total_seconds() / 86400, 2)
        keep = tuple(NumberVerdict(n, False, PruneRule.OVERFLOW_RECENT, reason) for n in numbers)
        return PrunePlan(False, reason, figures, keep)

    verdicts: dict[int, NumberVerdict] = {}
    unused: list[NumberUse] = []
    for number in numbers:
        rule, reason = number_use_rule(number, now=now)
        if rule == PruneRule.UNUSED:
            unused.append(number)
        else:
            verdicts[number.id] = NumberVerdict(number, False, rule, reason)
    unused.sort(key=lambda number: (number.last_used_at, number.id))

    cap = rotating * PRUNE_SHARE_PERCENT // 100
    above_minimum = max(rotating - min_size, 0)
    allowed = min(cap, above_minimum, len(unused))
    figures.update(unused=len(unused), cap=cap, above_minimum=above_minimum, removed=allowed)
    if above_minimum < cap:
        held_back = PruneRule.MIN_SIZE, f"the minimum size of {min_size}"
    else:
        held_back = PruneRule.CAP, f"the {PRUNE_SHARE_PERCENT}% cap: {cap} of {rotating} may go"
    for position, number in enumerate(unused):
        _, reason = number_use_rule(number, now=now)
        if position < allowed:
            verdicts[number.id] = NumberVerdict(number, True, PruneRule.UNUSED, f"unused: {reason}")
        else:
            verdicts[number.id] = NumberVerdict(
                number, False, held_back[0], f"held back by {held_back[1]} ({reason})"
            )
    figures["cap_hit"] = len(unused) > allowed and held_back[0] == PruneRule.CAP
    figures["min_size_hit"] = len(unused) > allowed and held_back[0] == PruneRule.MIN_SIZE

    if not unused:
        reason = "no unused number"
    elif allowed == 0 and held_back[0] == PruneRule.MIN_SIZE:
        reason = f"{len(unused)} unused, but the pool is at its minimum size of {min_size}"
    elif allowed == 0:
        reason = f"{len(unused)} unused, but {PRUNE_SHARE_PERCENT}% of {rotating} numbers rounds down to 0"
    else:
        reason = f"removes {allowed} of {len(unused)} unused numbers"
        if len(unused) > allowed:
            reason += f" (held back by {held_back[1]})"
    # Longest-unused first (those that go, then those held back), then the protected ones.
    rank = {number.id: position for position, number in enumerate(unused)}
    ordered = sorted(verdicts.values(), key=lambda v: (rank.get(v.number.id, len(rank)), v.number.id))
    return PrunePlan(allowed > 0, reason, figures, tuple(ordered))


def prune_month(*, now: datetime, tz: tzinfo) -> date | None:
    """The month to prune at `now` in time zone `tz` (its first day) when it is that month's last
    local day there; None on any other day."""
    local = now.astimezone(tz).date()
    return local.replace(day=1) if (local + timedelta(days=1)).day == 1 else None


# --- The adaptive policy's release at renewal -------------------------------------------------------
# A number is billed per started 30 days from its purchase: the only moment a release saves money is
# just before a renewal. The adaptive policy then releases the renewing number when the pool keeps
# enough without it — its busiest hour of the last RENEWAL_PEAK_WINDOW held `peak_in_use` numbers at
# once; it keeps `renewal_headroom` more (RENEWAL_HEADROOM_PERCENT, or three square roots of the peak
# for a small pool) — and when nobody can still be using it: not held,
# not presented and not called for RENEWAL_IDLE, neither pinned nor the overflow number. The month-end
# prune goes on as well (its rule is the seed article's).
BILLING_PERIOD = timedelta(days=30)
RENEWAL_PEAK_WINDOW = timedelta(days=7)
RENEWAL_HEADROOM_PERCENT = 15
RENEWAL_HEADROOM_SIGMAS = 3
RENEWAL_IDLE = timedelta(days=1)


def next_renewal(*, acquired_at: datetime, now: datetime) -> datetime:
    """The first renewal of a number bought at `acquired_at` that falls after `now` (the number is
    billed per started BILLING_PERIOD)."""
    periods = (now - acquired_at) // BILLING_PERIOD + 1
    return acquired_at + periods * BILLING_PERIOD


@dataclass(frozen=True)
class RenewalDecision:
    goes: bool
    rule: PruneRule
    reason: str
    need: int  # numbers the pool keeps at least


def renewal_headroom(peak_in_use: int) -> int:
    """The numbers a pool keeps at renewals above its recent peak: RENEWAL_HEADROOM_PERCENT of it, or
    RENEWAL_HEADROOM_SIGMAS times its square root when more (a small pool's busiest hour is mostly
    chance: a count of visitors holding numbers strays by about its square root), rounded up."""
    return max(_percent_headroom(peak_in_use), math.ceil(RENEWAL_HEADROOM_SIGMAS * math.sqrt(peak_in_use)))


def _percent_headroom(peak_in_use: int) -> int:
    return -(-peak_in_use * RENEWAL_HEADROOM_PERCENT // 100)  # rounded up


def renewal_need(*, peak_in_use: int, min_size: int) -> int:
    """The numbers a pool keeps at renewals: its recent peak plus the headroom."""
    return max(min_size, peak_in_use + renewal_headroom(peak_in_use))


def renewal_release_decide(
    *, number: NumberUse, now: datetime, size: int, min_size: int, peak_in_use: int
) -> RenewalDecision:
    """Whether `number`, about to renew, is released (the adaptive policy; `size`: rotating numbers)."""
    need = renewal_need(peak_in_use=peak_in_use, min_size=min_size)
    if number.is_overflow_number:
        return RenewalDecision(False, PruneRule.OVERFLOW_NUMBER, "the pool's overflow number", need)
    if number.pinned:
        return RenewalDecision(False, PruneRule.PINNED, "pinned by staff", need)
    if number.leased:
        return RenewalDecision(False, PruneRule.LEASED, "leased to a visitor right now", need)
    presented = number.last_presented_at
    if presented is not None and presented >= now - RENEWAL_IDLE:
        return RenewalDecision(False, PruneRule.PRESENTED, f"presented {_days(now - presented)} ago", need)
    called = number.last_called_at
    if called is not None and called >= now - RENEWAL_IDLE:
        return RenewalDecision(False, PruneRule.CALLED, f"called {_days(now - called)} ago", need)
    busiest = f"its busiest hour in {RENEWAL_PEAK_WINDOW.days} days held {peak_in_use} at once"
    if size - 1 < need:
        headroom = renewal_headroom(peak_in_use)
        words = _headroom_words(peak_in_use)
        reason = f"the pool needs {need}: {busiest}, plus {headroom} headroom ({words})"
        return RenewalDecision(False, PruneRule.MIN_SIZE, reason, need)
    reason = f"released at its renewal, unused for a day: the pool keeps {size - 1}, {busiest}"
    return RenewalDecision(True, PruneRule.UNUSED, reason, need)


def _headroom_words(peak_in_use: int) -> str:
    if renewal_headroom(peak_in_use) > _percent_headroom(peak_in_use):
        sigmas = f"{RENEWAL_HEADROOM_SIGMAS} times the square root of {peak_in_use}"
        return f"{sigmas}, more than {RENEWAL_HEADROOM_PERCENT}% for a pool this small"
    return f"{RENEWAL_HEADROOM_PERCENT}%"
