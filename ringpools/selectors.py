"""Reads of the ringpools app. The hand-out's pool lookup is cached briefly per process."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from ringpools.choices import NumberRole, NumberState, OverflowMode
from ringpools.models import DestinationNumber, PoolHourlyFigures, PromoNumber, RingPool


@dataclass(frozen=True)
class HandoutPool:
    """What the hand-out needs of a pool, in one query."""

    id: int
    account_id: int
    key: str
    lease_seconds: int
    overflow_mode: str
    overflow_number_id: int | None
    overflow_number: str | None
    destination_number: str
    allowed_origins: frozenset[str]

    @property
    def shows_overflow_number(self) -> bool:
        return self.overflow_mode == OverflowMode.OVERFLOW_NUMBER and self.overflow_number is not None


_cache: dict[str, tuple[float, HandoutPool | None]] = {}
# Keys that name no pool, apart: a client sending made-up keys fills this one, never evicting the
# pools being served (each made-up key still costs one query per RINGPOOL_POOL_CACHE_SECONDS).
_misses: dict[str, float] = {}
CACHE_LIMIT = 10_000
# What models.new_pool_key makes (and older keys typed by hand): anything else is no pool, answered
# without a query (a NUL or a megabyte in the path never reaches the database or the log).
POOL_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")


def handout_pool(key: str) -> HandoutPool | None:
    """The active pool with this public key, or None. Cached for RINGPOOL_POOL_CACHE_SECONDS.

    Every hand-out and CORS check needs these few settings; a short per-process cache spares a query
    per request. Changes made in admin reach all web processes within that many seconds.
    """
    if not POOL_KEY.fullmatch(key):
        return None
    ttl = settings.RINGPOOL_POOL_CACHE_SECONDS
    now = time.monotonic()
    if ttl > 0:
        if (hit := _cache.get(key)) is not None and hit[0] > now:
            return hit[1]
        if _misses.get(key, 0.0) > now:
            return None
    pool = _load_handout_pool(key)
    if ttl > 0:
        cache = _cache if pool is not None else _misses
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        if pool is not None:
            _cache[key] = (now + ttl, pool)
        else:
            _misses[key] = now + ttl
    return pool


def clear_handout_cache() -> None:
    _cache.clear()
    _misses.clear()


# One plain statement, written once: the ORM would compile a query per load, and every web process
# loads every pool it serves once per RINGPOOL_POOL_CACHE_SECONDS, so with many pools the compiling
# cost as much as the hand-outs. The values are parameters; the same text runs on SQLite.
_POOL_SQL = f"""
SELECT p.id, p.account_id, p.key, p.lease_seconds, p.overflow_mode, o.id, o.number, d.number,
       p.allowed_origins
FROM {RingPool._meta.db_table} p
JOIN {DestinationNumber._meta.db_table} d ON d.id = p.destination_number_id
LEFT JOIN {PromoNumber._meta.db_table} o ON o.pool_id = p.id AND o.role = %s AND o.state = %s
WHERE p.key = %s AND p.is_active
"""


def _load_handout_pool(key: str) -> HandoutPool | None:
    with connection.cursor() as cursor:
        cursor.execute(_POOL_SQL, [NumberRole.OVERFLOW, NumberState.ACTIVE, key])
        row = cursor.fetchone()  # one at most: ringpool_one_overflow_number
    if row is None:
        return None
    pool_id, account_id, key, lease_seconds, mode, overflow_id, overflow_e164, destination, origins = row
    if isinstance(origins, str | bytes):  # JSON text (SQLite, and Django's jsonb loader)
        origins = json.loads(origins)
    return HandoutPool(
        id=pool_id,
        account_id=account_id,
        key=key,
        lease_seconds=lease_seconds,
        overflow_mode=mode,
        overflow_number_id=overflow_id,
        overflow_number=overflow_e164 or None,
        destination_number=destination,
        allowed_origins=frozenset(
            str(o).rstrip("/").lower() for o in (origins if isinstance(origins, list) else [])
        ),
    )


def origin_allowed(pool: HandoutPool, origin: str) -> bool:
    return origin.rstrip("/").lower() in pool.allowed_origins


def pools_with_figures(queryset: QuerySet[RingPool], *, since: datetime, now: datetime) -> QuerySet[RingPool]:
    """Pools annotated with size, numbers leased now and overflows since `since`, without a join per row."""
    numbers = (
        PromoNumber.objects.filter(pool=OuterRef("pk"), state=NumberState.ACTIVE, role=NumberRole.ROTATING)
        .order_by()
        .values("pool")
    )
    overflows = (
        PoolHourlyFigures.objects.filter(pool=OuterRef("pk"), hour__gte=since)
        .order_by()
        .values("pool")
        .annotate(total=Sum("overflows"))
        .values("total")
    )
    return queryset.annotate(
        size=Coalesce(Subquery(numbers.annotate(c=Count("id")).values("c")), 0),
        leased_now=Coalesce(
            Subquery(numbers.filter(busy_until__gt=now).annotate(c=Count("id")).values("c")), 0
        ),
        overflows_24h=Coalesce(Subquery(overflows), 0),
    )
