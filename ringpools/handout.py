"""The hand-out: give a visitor a promo number of a pool, or the overflow (SPEC §3).

The hard invariant — two visitors never hold the same number at the same time — rests on the
number row: `PromoNumber.busy_until` always equals the `expires_at` of the one lease holding it.
 - A claim takes a number only while `busy_until` is past, under a row lock (SKIP LOCKED, so
   concurrent claims spread over different numbers instead of queueing on one).
 - A renewal or release moves `busy_until` only while it still equals its own lease's `expires_at`
   (compare-and-swap): a visitor whose lease lapsed and whose number went to someone else cannot
   take it back, whatever the clocks of the web processes say.

A renewal also locks the visitor's lease row, so two tabs of one visitor renewing at once queue
instead of the second one losing its number. PostgreSQL refuses overlapping leases of one number
outright (exclusion constraint, ringpools migration 0002), so a bug here could not hand out a
number twice silently.

On PostgreSQL the renew-or-claim is one statement, the overflow another (fewest round trips on the
hot path); on other databases (the SQLite demo, whose IMMEDIATE transactions serialise writers) the
same steps run through the ORM.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from ringpools.choices import NumberRole, NumberState, PresentationKind
from ringpools.figures import UPSERT_SQL, figures_add, figures_key
from ringpools.models import Lease, PromoNumber, RingPool
from ringpools.selectors import HandoutPool

# Overflow presentations of one pool within this window write `last_overflow_at` once: during a rush
# every visitor overflows at once, and one write per request would queue them all on the pool's row.
OVERFLOW_WRITE_EVERY = timedelta(seconds=1)
# After the page says goodbye, the number stays with the visitor this long (a reload, the next page).
GOODBYE_GRACE = timedelta(seconds=20)
# A renewal that found the visitor's live lease but lost the compare-and-swap to a concurrent renewal.
LOST_RACE = object()


@dataclass(frozen=True)
class Ask:
    """One visitor's request, as both step implementations take it."""

    pool: HandoutPool
    visitor_id: str
    page_url: str
    params: dict[str, Any]
    now: datetime
    expires: datetime
    counted: int  # 1 for a page view, 0 for a keep-alive renewal


@dataclass(frozen=True)
class Presentation:
    number: str
    kind: str
    expires_at: datetime | None
    lease_id: int | None = None


def present_number(
    *,
    pool: HandoutPool,
    visitor_id: str,
    page_url: str = "",
    params: dict[str, Any] | None = None,
    keepalive: bool = False,
    now: datetime | None = None,
) -> Presentation:
    """The number to show this visitor now. `keepalive` renewals are not counted as presentations."""
    now = now or timezone.now()
    ask = Ask(
        pool=pool,
        visitor_id=visitor_id,
        page_url=page_url,
        params=params or {},
        now=now,
        expires=now + timedelta(seconds=pool.lease_seconds),
        counted=0 if keepalive else 1,
    )
    steps = steps_for_database()
    held = steps.hold(ask)
    if held is not None:
        number, lease_id = held
        return Presentation(
            number=str(number), kind=PresentationKind.PROMO, expires_at=ask.expires, lease_id=lease_id
        )
    steps.overflow(ask)
    if pool.shows_overflow_number:
        return Presentation(
            number=pool.overflow_number or "", kind=PresentationKind.OVERFLOW, expires_at=None
        )
    return Presentation(number=pool.destination_number, kind=PresentationKind.DESTINATION, expires_at=None)


def steps_for_database() -> type[_PostgresSteps] | type[_OrmSteps]:
    return _PostgresSteps if connection.vendor == "postgresql" else _OrmSteps


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


# --- PostgreSQL: one statement a step ---------------------------------------------------------------

_L = Lease._meta.db_table
_N = PromoNumber._meta.db_table
_P = RingPool._meta.db_table

# Renew the visitor's live lease, or (only when there is none) claim the free number that rested
# longest and lease it; count the presentation. Returns (number, lease id, the live lease found).
_HOLD_SQL = f"""
WITH cur AS (
    SELECT id, number_id, expires_at FROM {_L}
    WHERE pool_id = %(pool)s AND visitor_id = %(visitor)s AND expires_at > %(now)s
    ORDER BY expires_at DESC LIMIT 1
    FOR UPDATE
), renewed AS (
    UPDATE {_N} n SET busy_until = %(expires)s, last_presented_at = %(now)s
    FROM cur
    WHERE n.id = cur.number_id AND n.busy_until = cur.expires_at AND n.state = 'active'
    RETURNING n.number, cur.id AS lease_id
), renewed_lease AS (
    UPDATE {_L} l SET expires_at = %(expires)s, released_at = NULL
    FROM renewed WHERE l.id = renewed.lease_id
    RETURNING l.id
), candidate AS (
    SELECT id FROM {_N}
    WHERE pool_id = %(pool)s AND state = 'active' AND role = 'rotating' AND busy_until <= %(now)s
      AND NOT EXISTS (SELECT 1 FROM cur)
    ORDER BY busy_until, id
    LIMIT 1
    FOR UPDATE {{skip_locked}}
), claimed AS (
    UPDATE {_N} n SET busy_until = %(expires)s, last_presented_at = %(now)s
    FROM candidate
    WHERE n.id = candidate.id AND n.busy_until <= %(now)s
    RETURNING n.id, n.number
), new_lease AS (
    INSERT INTO {_L} (pool_id, number_id, visitor_id, page_url, params, started_at, expires_at)
    SELECT %(pool)s, id, %(visitor)s, %(page_url)s, %(params)s, %(now)s, %(expires)s FROM claimed
    RETURNING id
), held AS (
    SELECT number, lease_id FROM renewed
    UNION ALL
    SELECT claimed.number, new_lease.id FROM claimed, new_lease
), figures AS (
    {
    UPSERT_SQL.replace(
        "VALUES (%s, %s, %s, %s, %s, %s)", "SELECT %(pool)s, %(hour)s, %(shard)s, %(counted)s, 0, 0 FROM held"
    )
}
    RETURNING 1
)
SELECT held.number, held.lease_id, (SELECT id FROM cur)
FROM (SELECT 1) AS one LEFT JOIN held ON true
"""
_HOLD_SKIP_LOCKED_SQL = _HOLD_SQL.format(skip_locked="SKIP LOCKED")
_HOLD_WAITING_SQL = _HOLD_SQL.format(skip_locked="")

_OVERFLOW_SQL = f"""
WITH pool AS (
    UPDATE {_P} SET last_overflow_at = %(now)s
    WHERE id = %(pool)s AND (last_overflow_at IS NULL OR last_overflow_at < %(since)s)
    RETURNING id
), overflow_number AS (
    UPDATE {_N} SET last_presented_at = %(now)s
    WHERE id = %(overflow_number)s AND (last_presented_at IS NULL OR last_presented_at < %(since)s)
    RETURNING id
), figures AS (
    {
    UPSERT_SQL.replace(
        "VALUES (%s, %s, %s, %s, %s, %s)", "VALUES (%(pool)s, %(hour)s, %(shard)s, %(counted)s, 1, 0)"
    )
}
    RETURNING 1
)
SELECT 1
"""


def _statement(sql: str, params: dict[str, Any]) -> tuple:
    # Not prepared on purpose: a generic plan made while the lease table is small (a new deployment)
    # would keep scanning it whole long after it has grown; each execution is planned on today's size.
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


class _PostgresSteps:
    @staticmethod
    def hold(ask: Ask) -> tuple[str, int] | None:
        from psycopg.types.json import Jsonb

        hour, shard = figures_key(ask.now)
        args = {
            "pool": ask.pool.id,
            "visitor": ask.visitor_id,
            "now": ask.now,
            "expires": ask.expires,
            "page_url": ask.page_url,
            "params": Jsonb(ask.params),
            "hour": hour,
            "shard": shard,
            "counted": ask.counted,
        }
        # A live lease whose swap lost to a same-visitor renewal (two tabs at once) reads again.
        # SKIP LOCKED spreads concurrent claims over different numbers; finding nothing may only mean
        # the free ones are locked this instant, so confirm with a waiting lock before the overflow.
        for _ in range(3):
            number, lease_id, live_lease = _statement(_HOLD_SKIP_LOCKED_SQL, args)
            if number is not None:
                return number, lease_id
            if live_lease is None:
                break
        number, lease_id, _ = _statement(_HOLD_WAITING_SQL, args)
        return (number, lease_id) if number is not None else None

    @staticmethod
    def overflow(ask: Ask) -> None:
        pool = ask.pool
        hour, shard = figures_key(ask.now)
        _statement(
            _OVERFLOW_SQL,
            {
                "now": ask.now,
                "pool": pool.id,
                "since": ask.now - OVERFLOW_WRITE_EVERY,
                "hour": hour,
                "shard": shard,
                "overflow_number": pool.overflow_number_id if pool.shows_overflow_number else None,
                "counted": ask.counted,
            },
        )


# --- Any database: the same steps through the ORM -------------------------------------------------


class _OrmSteps:
    @classmethod
    def hold(cls, ask: Ask) -> tuple[str, int] | None:
        for _ in range(3):
            held = cls.renew(ask)
            if held is not LOST_RACE:
                break  # else the same visitor renewed at this instant (two tabs): read again
        if held is None or held is LOST_RACE:
            held = cls.claim(ask)
        return held

    @staticmethod
    @transaction.atomic
    def renew(ask: Ask) -> tuple[str, int] | object | None:
        lease = (
            Lease.objects.filter(pool_id=ask.pool.id, visitor_id=ask.visitor_id, expires_at__gt=ask.now)
            .order_by("-expires_at")
            .select_for_update()
            .values("id", "number_id", "number__number", "expires_at")
            .first()
        )
        if lease is None:
            return None
        swapped = PromoNumber.objects.filter(
            id=lease["number_id"], busy_until=lease["expires_at"], state=NumberState.ACTIVE
        ).update(busy_until=ask.expires, last_presented_at=ask.now)
        if swapped != 1:
            return LOST_RACE
        Lease.objects.filter(id=lease["id"]).update(expires_at=ask.expires, released_at=None)
        figures_add(ask.pool.id, ask.now, presentations=ask.counted)
        return lease["number__number"], lease["id"]

    @staticmethod
    @transaction.atomic
    def claim(ask: Ask) -> tuple[str, int] | None:
        free = PromoNumber.objects.filter(
            pool_id=ask.pool.id, state=NumberState.ACTIVE, role=NumberRole.ROTATING, busy_until__lte=ask.now
        ).order_by("busy_until", "id")
        skip = connection.features.has_select_for_update_skip_locked
        for skip_locked in (True, False) if skip else (False,):
            number = free.select_for_update(skip_locked=skip_locked).values("id", "number").first()
            if number is not None:
                break
        else:
            return None
        PromoNumber.objects.filter(id=number["id"]).update(busy_until=ask.expires, last_presented_at=ask.now)
        lease = Lease.objects.create(
            pool_id=ask.pool.id,
            number_id=number["id"],
            visitor_id=ask.visitor_id,
            page_url=ask.page_url,
            params=ask.params,
            started_at=ask.now,
            expires_at=ask.expires,
        )
        figures_add(ask.pool.id, ask.now, presentations=ask.counted)
        return number["number"], lease.id

    @staticmethod
    @transaction.atomic
    def overflow(ask: Ask) -> None:
        pool, now = ask.pool, ask.now
        since = now - OVERFLOW_WRITE_EVERY
        RingPool.objects.filter(id=pool.id).filter(
            Q(last_overflow_at__isnull=True) | Q(last_overflow_at__lt=since)
        ).update(last_overflow_at=now)
        if pool.shows_overflow_number:
            PromoNumber.objects.filter(id=pool.overflow_number_id).filter(
                Q(last_presented_at__isnull=True) | Q(last_presented_at__lt=since)
            ).update(last_presented_at=now)
        figures_add(pool.id, now, presentations=ask.counted, overflows=1)
