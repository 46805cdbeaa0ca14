"""Hourly per-pool counts (presentations, overflows, calls): one upsert, spread over shard rows."""

from __future__ import annotations

import threading
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Sum

from ringpools.models import PoolHourlyFigures

_TABLE = PoolHourlyFigures._meta.db_table

UPSERT_SQL = f"""
INSERT INTO {_TABLE} (pool_id, hour, shard, presentations, overflows, calls)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (pool_id, hour, shard) DO UPDATE SET
    presentations = {_TABLE}.presentations + excluded.presentations,
    overflows = {_TABLE}.overflows + excluded.overflows,
    calls = {_TABLE}.calls + excluded.calls
"""


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def shard() -> int:
    # Concurrent requests in different processes (or threads) write different rows: no lock queue.
    return threading.get_native_id() % PoolHourlyFigures.SHARDS


def figures_key(moment: datetime) -> tuple[datetime, int]:
    """The (hour, shard) row a count made now goes to, ready to pass to SQL."""
    return connection.ops.adapt_datetimefield_value(hour_of(moment)), shard()


def figures_add(
    pool_id: int, moment: datetime, *, presentations: int = 0, overflows: int = 0, calls: int = 0
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(UPSERT_SQL, [pool_id, *figures_key(moment), presentations, overflows, calls])


def figures_compact(*, before: datetime) -> int:
    """Fold the shard rows of every hour before `before` into shard 0. Returns the rows removed.

    Hours that are over get no more writes, so summing and deleting their shards loses nothing.
    """
    hour = hour_of(before)
    spread = (
        PoolHourlyFigures.objects.filter(hour__lt=hour, shard__gt=0)
        .values("pool_id", "hour")
        .annotate(p=Sum("presentations"), o=Sum("overflows"), c=Sum("calls"))
        .order_by()
    )
    removed = 0
    with transaction.atomic():
        for group in spread:
            with connection.cursor() as cursor:
                cursor.execute(
                    UPSERT_SQL,
                    [
                        group["pool_id"],
                        connection.ops.adapt_datetimefield_value(group["hour"]),
                        0,
                        group["p"],
                        group["o"],
                        group["c"],
                    ],
                )
            removed += PoolHourlyFigures.objects.filter(
                pool_id=group["pool_id"], hour=group["hour"], shard__gt=0
            ).delete()[0]
    return removed
