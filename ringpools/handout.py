"""The hand-out: give a visitor a promo number of a pool, or the overflow (SPEC §3).

Invariants, and what keeps them:
 - Two visitors never hold one number at once. `PromoNumber.busy_until` equals the `expires_at` of the
   one lease holding the number; a claim takes a number only while `busy_until` is past, under a row
   lock (SKIP LOCKED, so concurrent claims spread over different numbers). PostgreSQL also refuses
   overlapping leases of one number (constraint `lease_number_not_held_twice`, migration 0002).
 - One visitor holds at most one number of a pool, however many of its requests arrive at once.
   PostgreSQL refuses a second live lease of one visitor (`lease_one_per_visitor`, migrations 0005 and 0006);
   the losing request's claim is undone and it asks again, finding the winner's lease to renew.
   SQLite (the demo) serialises whole hand-outs in IMMEDIATE transactions instead.
 - No false overflow. A request answers overflow only when its statement saw no free number at all;
   when free numbers were merely locked by other claims this instant, it asks again.
 - A renewal locks the lease and its number row, so renewals of one lease queue instead of racing;
   one that comes a moment after the last extension (renewal_slack) keeps the lease as it is.

Order (SPEC §3.3): among free numbers, one that has rested at least the cool-down, the pool's
longest-serving (oldest `acquired_at`) first; only if none has, the one released longest ago. Keeping
use on the same numbers leaves a grown pool's surplus idle, so the month-end prune can find it.
"Rested" moves with the clock, so the flag `rested` is set lazily: each claim flags up to
handout_steps.BACKLOG_FLAGGED numbers whose `busy_until` has fallen a cool-down behind, and weighs
them with the flagged ones. Both are read off their own partial index (models.PromoNumber.Meta.indexes).

On PostgreSQL a hand-out is one statement (one round trip; an overflowing request writes nothing):
the whole hand-out, or a cheaper part of it when the caller's hint says which part is needed (a claim
for a visitor id made just now, a renewal for a keep-alive), followed by the whole one when the hint
was wrong. On other databases the same steps run through the ORM (both in ringpools.handout_steps).
Both return the same `Outcome`, and the same tests run on both. Presentation and overflow counts go
to `figures.handout_figures`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from ringpools.choices import PresentationKind
from ringpools.figures import handout_figures
from ringpools.handout_steps import Ask, Outcome, _OrmSteps, _PostgresSteps
from ringpools.models import Lease, PromoNumber
from ringpools.selectors import HandoutPool

# After the page says goodbye, the number stays with the visitor this long (a reload, the next page).
GOODBYE_GRACE = timedelta(seconds=20)
# A live lease is extended at most this often (and a tenth of its length at most): renewal_slack().
RENEWAL_WRITE_EVERY = timedelta(seconds=60)
# Rounds of one hand-out that end without an answer because a visitor's other request won
# (conflict) or its number left service (ended); the next round answers.
ATTEMPTS = 8
# Free numbers all locked by other claims this instant (busy): those claims end within a statement,
# so the hand-out asks again, backing off up to BUSY_BACKOFF_MAX, for up to this long. A rush on a
# nearly exhausted pool on a saturated machine can take many rounds; none may end as an overflow,
# which is counted and would make growth buy a number nobody needed.
BUSY_PATIENCE_SECONDS = 2.0
BUSY_BACKOFF_MAX = 0.05


class ClaimRefused(Exception):
    """The visitor needs a new number and the caller said it may not claim one (rate limit)."""


class HandoutBusy(Exception):
    """No answer in time: free numbers stayed locked by other claims, or this visitor's requests kept
    conflicting. Nothing was leased and nothing counted (an earlier round may have ended a lease whose
    number left service, or flagged rested numbers); the caller answers "try again"."""


@dataclass(frozen=True)
class Presentation:
    number: str
    kind: str
    expires_at: datetime | None
    lease_id: int | None = None
    claimed: bool = False


def present_number(
    *,
    pool: HandoutPool,
    visitor_id: str,
    page_url: str = "",
    params: dict[str, Any] | None = None,
    keepalive: bool = False,
    may_claim: bool = True,
    new_visitor: bool = False,
    now: datetime | None = None,
) -> Presentation:
    """The number to show this visitor now. `keepalive` renewals of a number are not counted as
    presentations (a keep-alive given a new number is); an overflow shown is counted every time (with
    a presentation). `new_visitor`: the
    caller made the visitor id just now, so a claim is tried first; a keep-alive is taken as a renewal
    of the number the visitor holds (hints: any answer is the same as without them).

    Raises ClaimRefused, having changed nothing, when the visitor needs a new number and `may_claim`
    is false; HandoutBusy, having leased and counted nothing, when no answer came in time (never an
    overflow that is not real).
    """
    now = now or timezone.now()
    ask = Ask(
        pool=pool,
        visitor_id=visitor_id,
        page_url=page_url,
        params=params or {},
        now=now,
        expires=now + timedelta(seconds=pool.lease_seconds),
        rested_before=now - timedelta(seconds=settings.RINGPOOL_HANDOUT_COOLDOWN_SECONDS),
        fresh_until=now + timedelta(seconds=pool.lease_seconds) - renewal_slack(pool.lease_seconds),
        may_claim=may_claim,
        new_visitor=new_visitor,
        renewal=keepalive and not new_visitor,
    )
    steps = steps_for_database()
    unanswered, busy_rounds, busy_since = 0, 0, 0.0
    while True:
        step = steps.hold(ask)
        if step.outcome in (Outcome.KEPT, Outcome.RENEWED, Outcome.CLAIMED):
            # A keep-alive renews a number already counted; one that got a new number was shown it.
            if not keepalive or step.outcome == Outcome.CLAIMED:
                handout_figures.presented(pool.id, now)
            if step.outcome == Outcome.KEPT:
                handout_figures.number_presented(step.number_id, now)
            return Presentation(
                number=str(step.number),
                kind=PresentationKind.PROMO,
                expires_at=step.expires_at or ask.expires,
                lease_id=step.lease_id,
                claimed=step.outcome == Outcome.CLAIMED,
            )
        if step.outcome == Outcome.REFUSED:
            raise ClaimRefused
        if step.outcome == Outcome.NONE:
            break
        if step.outcome == Outcome.BUSY:
            busy_rounds += 1
            if busy_rounds == 1:
                busy_since = time.monotonic()
            elif time.monotonic() - busy_since > BUSY_PATIENCE_SECONDS:
                raise HandoutBusy
            if busy_rounds > 2:  # the lockers finish within a statement
                time.sleep(min(0.001 * 2 ** (busy_rounds - 3), BUSY_BACKOFF_MAX))
            continue
        if ask.new_visitor or ask.renewal:  # the hint was wrong, or the number left service
            ask = replace(ask, new_visitor=False, renewal=False)  # ask the whole way
            continue
        unanswered += 1  # CONFLICT or ENDED
        if unanswered >= ATTEMPTS:
            raise HandoutBusy
    overflow_number_id = pool.overflow_number_id if pool.shows_overflow_number else None
    # Every overflow shown is an overflow presentation (SPEC §3.5), a keep-alive's too: the visitor
    # still waits for a number. It counts as a presentation as well, so overflows never exceed them.
    handout_figures.overflowed(pool.id, now, overflow_number_id=overflow_number_id, turned_away=not keepalive)
    if pool.shows_overflow_number:
        return Presentation(
            number=pool.overflow_number or "", kind=PresentationKind.OVERFLOW, expires_at=None
        )
    return Presentation(number=pool.destination_number, kind=PresentationKind.DESTINATION, expires_at=None)


def renewal_slack(lease_seconds: int) -> timedelta:
    """A renewal this soon after the last extension keeps the lease as it is and writes nothing: tabs
    opened at once, reloads and keep-alives then cost no commit. The lease ends at most this much
    earlier than a write per renewal would make it; the number's last_presented_at stays exact."""
    return min(RENEWAL_WRITE_EVERY, timedelta(seconds=lease_seconds // 10))


def steps_for_database() -> type[_PostgresSteps] | type[_OrmSteps]:
    return _PostgresSteps if connections[DEFAULT_DB_ALIAS].vendor == "postgresql" else _OrmSteps


def release_lease(*, pool: HandoutPool, visitor_id: str, now: datetime | None = None) -> bool:
    """The page said goodbye: the visitor keeps the number only for GOODBYE_GRACE more.

    A reload or the next page of the same site comes back within seconds and renews the same number;
    a visitor who really left frees it almost at once instead of after the whole lease.
    """
    now = now or timezone.now()
    ends = now + GOODBYE_GRACE
    with transaction.atomic():
        lease = (
            Lease.objects.filter(pool_id=pool.id, visitor_id=visitor_id, expires_at__gt=ends)
            .order_by("-expires_at")
            .select_for_update()
            .first()
        )
        if lease is None:
            return False
        swapped = PromoNumber.objects.filter(id=lease.number_id, busy_until=lease.expires_at).update(
            busy_until=ends
        )
        if swapped:
            Lease.objects.filter(id=lease.id).update(expires_at=ends, released_at=now)
        return swapped == 1
