"""Reads of the ringpools app. The hand-out's pool lookup is cached briefly per process."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from ringpools.choices import NumberRole, NumberState, OverflowMode
from ringpools.models import PoolHourlyFigures, PromoNumber, RingPool


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
    if ttl > 0 and (hit := _cache.get(key)) is not None and hit[0] > now:
        return hit[1]
    pool = _load_handout_pool(key)
    if ttl > 0:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[key] = (now + ttl, pool)
    return pool


def clear_handout_cache() -> None:
    _cache.clear()


def _load_handout_pool(key: str) -> HandoutPool | None:
    overflow = PromoNumber.objects.filter(
        pool=OuterRef("pk"), role=NumberRole.OVERFLOW, state=NumberState.ACTIVE
    )
    row = (
        RingPool.objects.filter(key=key, is_active=True)
        .annotate(
            overflow_id=Subquery(overflow.values("id")[:1]),
            overflow_e164=Subquery(overflow.values("number")[:1]),
        )
        .values(
            "id",
            "account_id",
            "key",
            "lease_seconds",
            "overflow_mode",
            "overflow_id",
            "overflow_e164",
            "destination_number__number",
            "allowed_origins",
        )
        .first()
    )
    if row is None:
        return None
    origins = row["allowed_origins"] if isinstance(row["allowed_origins"], list) else []
    return HandoutPool(
        id=row["id"],
        account_id=row["account_id"],
        key=row["key"],
        lease_seconds=row["lease_seconds"],
        overflow_mode=row["overflow_mode"],
        overflow_number_id=row["overflow_id"],
        overflow_number=str(row["overflow_e164"]) if row["overflow_e164"] else None,
        destination_number=str(row["destination_number__number"]),
        allowed_origins=frozenset(str(o).rstrip("/").lower() for o in origins),
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
