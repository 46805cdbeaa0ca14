"""Benchmark of the pool health charts: a pool with a year of history against one with a month.

    python bench/pool_health.py [--days-of-history 365] [--leases-per-hour 20] [--pools 5] [--runs 15]

Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/dev_settings_bench —
the database is dropped and re-created). Seeds `--pools` pools with a year of hourly figures (8 shard
rows per hour for the last two days, compacted before), leases and daily growth events, plus one pool
with only a month of history, then times `pool_health_charts(days=7)` and `days=30` for both in the
same run and prints the median, the ratio year / month, and the statements each drawing made.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import recreate_database

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days-of-history", type=int, default=365)
    parser.add_argument("--leases-per-hour", type=int, default=20)
    parser.add_argument("--pools", type=int, default=5, help="pools with the long history (table size)")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dev_settings_bench")
    recreate_database(url)
    os.environ.update(
        {"DATABASE_URL": url, "DEBUG": "0", "SECRET_KEY": secrets.token_hex(32), "LOG_LEVEL": "WARNING"}
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ringpools.models import RingPool
    from scaling.health.charts import pool_health_charts

    call_command("migrate", "--noinput", verbosity=0)
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.monotonic()
    year_pools = [
        seed_pool(f"year-{i}", now, args.days_of_history, args.leases_per_hour) for i in range(args.pools)
    ]
    month_pool = seed_pool("month", now, 31, args.leases_per_hour)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM ringpools_poolhourlyfigures")
        figures = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM ringpools_lease")
        leases = cursor.fetchone()[0]
    print(
        f"seeded {args.pools} pools x {args.days_of_history} days + 1 pool x 31 days in "
        f"{time.monotonic() - started:.0f} s: {figures:,} hourly figure rows, {leases:,} leases"
    )

    def measure(pool_id: int, days: int) -> tuple[float, int]:
        pool = RingPool.objects.select_related("account").get(pk=pool_id)
        pool_health_charts(pool=pool, now=now, days=days)  # warm the connection and plans
        timings = []
        for _ in range(args.runs):
            begin = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                pool_health_charts(pool=pool, now=now, days=days)
            timings.append((time.perf_counter() - begin) * 1000)
        return statistics.median(timings), len(queries)

    print(f"{'window':>7} {'pool history':>13} {'median ms':>10} {'queries':>8}")
    for days in (7, 30):
        month_ms, month_queries = measure(month_pool, days)
        year_ms, year_queries = measure(year_pools[len(year_pools) // 2], days)
        print(f"{days:>5} d {'31 days':>13} {month_ms:>10.1f} {month_queries:>8}")
        print(f"{days:>5} d {f'{args.days_of_history} days':>13} {year_ms:>10.1f} {year_queries:>8}")
        print(f"        ratio {args.days_of_history} days / 31 days of history: {year_ms / month_ms:.2f}")
    return 0


def seed_pool(name: str, now: datetime, days: int, leases_per_hour: int) -> int:
    """A pool with `days` of history, written by SQL generate_series (seconds, not minutes)."""
    from django.db import connection

    from accounts.models import Account
    from ringpools.models import Campaign, DestinationNumber, RingPool
    from scaling.audit import scaling_events_insert_sql

    account, _ = Account.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    campaign = Campaign.objects.create(account=account, name=name)
    destination, _ = DestinationNumber.objects.get_or_create(account=account, number="+18055550100")
    pool = RingPool.objects.create(
        account=account, campaign=campaign, destination_number=destination, name=name
    )
    start = now - timedelta(days=days)
    hours = days * 24
    with connection.cursor() as cursor:
        # 50 rotating numbers over the history; one in five replaced every month (released + new).
        cursor.execute(
            """
            INSERT INTO ringpools_promonumber (account_id, pool_id, role, number, number_type, area_code,
                region, state, acquired_at, released_at, busy_until, rested, carrier_ref, monthly_cost,
                pin_reason)
            SELECT %(account)s, %(pool)s, 'rotating', '+1805' || lpad((%(pool)s * 1000 + g)::text, 7, '0'),
                'local', '805', 'CA',
                CASE WHEN g >= 50 AND g %% 5 = 0 THEN 'released' ELSE 'active' END,
                %(start)s, CASE WHEN g >= 50 AND g %% 5 = 0 THEN %(start)s + (g * interval '1 day') END,
                '2000-01-01', false, '', 1, ''
            FROM generate_series(0, 49 + %(days)s / 30 * 10) g
            """,
            {"account": account.pk, "pool": pool.pk, "start": start, "days": days},
        )
        cursor.execute(
            """
            INSERT INTO ringpools_poolhourlyfigures (pool_id, hour, shard, presentations, overflows, calls)
            SELECT %(pool)s, date_trunc('hour', %(now)s::timestamptz) - h * interval '1 hour', s,
                20 + h %% 7, (h %% 13 = 0)::int * 3, h %% 4
            FROM generate_series(0, %(hours)s - 1) h
            CROSS JOIN generate_series(0, 7) s
            WHERE s = 0 OR h < 48
            """,
            {"pool": pool.pk, "now": now, "hours": hours},
        )
        # Leases: `leases_per_hour` per hour, each 20 minutes, the numbers taken in turn (no overlap).
        cursor.execute(
            """
            INSERT INTO ringpools_lease (pool_id, number_id, visitor_id, page_url, params, started_at,
                expires_at)
            SELECT %(pool)s, numbers.ids[1 + g %% 50], 'visitor-' || g, '', '{}',
                %(start)s + g * (interval '60 minutes' / %(per_hour)s),
                %(start)s + g * (interval '60 minutes' / %(per_hour)s) + interval '20 minutes'
            FROM generate_series(0, %(hours)s * %(per_hour)s - 1) g,
                (SELECT array_agg(id ORDER BY id) AS ids FROM ringpools_promonumber
                 WHERE pool_id = %(pool)s AND state = 'active') numbers
            """,
            {"pool": pool.pk, "start": start, "hours": hours, "per_hour": leases_per_hour},
        )
        # A growth event a day, through the audit trail's own INSERT.
        cursor.execute(
            scaling_events_insert_sql(
                "SELECT %(account)s::bigint, %(pool)s::bigint, NULL::bigint, 'number_added', 'growth', "
                "'bench', '{}'::jsonb, NULL::bigint, %(start)s::timestamptz + d * interval '1 day' "
                "FROM generate_series(0, %(days)s - 1) d"
            ),
            {"account": account.pk, "pool": pool.pk, "start": start, "days": days},
        )
    return pool.pk


if __name__ == "__main__":
    sys.exit(main())
