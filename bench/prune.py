"""Benchmark of the month-end prune pass over many pools, on PostgreSQL.

    python bench/prune.py [--pools 5000] [--numbers 200] [--idle 0.15] [--overflowed 0.1]

Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/dev_prune_bench — the
database is dropped and re-created). Seeds `pools` x `numbers` active numbers (a share `idle` of each
pool unused for 6-40 days, the rest presented yesterday; a share `overflowed` of the pools overflowed
3 days ago, so they do not scale down), then runs, each phase in its own process so its peak memory is
its own:
  scan     the baseline: read every number of the pools once, streamed (the least a pass can do)
  dry run  the plan of every pool (what `prune_ringpools --dry-run` computes)
  run      the real pass: plan, monthly record, numbers out of rotation, release orders queued
  rerun    the same pass again in the same month (must remove nothing)
and prints wall time, peak RSS and query count of each, with ratios to the scan. Carrier calls are not
part of the pass: the releases it queues are sent per number by workers (and reconciliation).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import recreate_database

ROOT = Path(__file__).resolve().parent.parent
LAST_DAY = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # Nov 30, 12:00 in Los Angeles
PHASES = ("scan", "dry run", "run", "rerun")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=5000)
    parser.add_argument("--numbers", type=int, default=200)
    parser.add_argument("--idle", type=float, default=0.15)
    parser.add_argument("--overflowed", type=float, default=0.1)
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dev_prune_bench")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY", secrets.token_hex(32)),
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }
    if args.phase:
        print(json.dumps(phase(args.phase, env)))
        return 0

    recreate_database(database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    started = time.monotonic()
    seed(env, args.pools, args.numbers, args.idle, args.overflowed)
    total = args.pools * args.numbers
    seconds = time.monotonic() - started
    print(f"seeded {args.pools} pools x {args.numbers} numbers = {total:,} in {seconds:.1f} s")

    figures = {}
    for name in PHASES:
        out = subprocess.run(
            [sys.executable, __file__, "--phase", name],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        figures[name] = json.loads(out.stdout.strip().splitlines()[-1])
    scan = figures["scan"]
    print("\n| phase | wall s | peak RSS MB | queries | pools | removed | wall/scan | RSS/scan |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, f in figures.items():
        counts = f"{f['queries']:,} | {f['pools']:,} | {f['removed']:,}"
        ratios = f"{f['wall'] / scan['wall']:.1f} | {f['rss_mb'] / scan['rss_mb']:.2f}"
        print(f"| {name} | {f['wall']:.2f} | {f['rss_mb']:.0f} | {counts} | {ratios} |")
    run = figures["run"]
    per = f"{run['queries'] / args.pools:.3f} queries per pool, {run['queries'] / total:.5f} per number"
    met = "met" if run["wall"] < 15 else "MISSED"
    print(f"\nreal pass: {per}; the decisions (every pool's record, its numbers out of rotation and their")
    print(f"release orders queued for the carrier workers) within 15 s: {run['wall']:.1f} s, {met}")
    return 0


def phase(name: str, env: dict) -> dict:
    setup(env)
    import itertools

    from django.db import connection
    from django.db.backends.signals import connection_created

    from ringpools.choices import NumberState
    from ringpools.models import PromoNumber
    from scaling.pruning.run import ringpools_prune

    counted = itertools.count()  # every connection's statements: the pass writes from a second thread

    def count(execute, sql, params, many, context):
        next(counted)
        return execute(sql, params, many, context)

    def counting(sender, connection, **kwargs):
        connection.execute_wrappers.append(count)

    connection_created.connect(counting)
    connection.close()  # opened again, counted, by the first statement
    pools = removed = 0
    started = time.monotonic()
    if name == "scan":
        for _ in (
            PromoNumber.objects.filter(state=NumberState.ACTIVE).values_list("id").iterator(chunk_size=5000)
        ):
            removed += 0
        pools = 0
    else:
        for result in ringpools_prune(now=LAST_DAY, dry_run=name == "dry run"):
            pools += 1
            removed += len(result.removed)
    wall = time.monotonic() - started
    queries = next(counted)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall": wall, "rss_mb": rss_mb, "queries": queries, "pools": pools, "removed": removed}


def setup(env: dict) -> None:
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DEBUG", "SECRET_KEY")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed(env: dict, pools: int, numbers: int, idle: float, overflowed: float) -> None:
    setup(env)
    from django.db import connection

    from accounts.models import Account
    from ringpools.models import Campaign, DestinationNumber, RingPool

    accounts = Account.objects.bulk_create(
        Account(name=f"Bench {i}", slug=f"bench-{i}", timezone="America/Los_Angeles") for i in range(50)
    )
    campaigns = {a.pk: Campaign.objects.create(account=a, name="Bench") for a in accounts}
    destinations = {
        a.pk: DestinationNumber.objects.create(account=a, number=f"+1805555{i:04d}")
        for i, a in enumerate(accounts)
    }
    RingPool.objects.bulk_create(
        (
            RingPool(
                account=accounts[i % len(accounts)],
                campaign=campaigns[accounts[i % len(accounts)].pk],
                destination_number=destinations[accounts[i % len(accounts)].pk],
                name=f"Pool {i}",
                max_size=numbers * 2,
                last_overflow_at=LAST_DAY - timedelta(days=3 if i < pools * overflowed else 60),
            )
            for i in range(pools)
        ),
        batch_size=1000,
    )
    idle_numbers = int(numbers * idle)
    with connection.cursor() as cursor:
        # Numbers are the pool's rows 0..numbers-1; the first `idle_numbers` of each pool are unused.
        cursor.execute(
            """
            INSERT INTO ringpools_promonumber (account_id, pool_id, role, number, number_type, area_code,
                region, state, acquired_at, busy_until, rested, carrier_ref, monthly_cost, pin_reason,
                last_presented_at)
            SELECT p.account_id, p.id, 'rotating', '+1' || (2000000000 + (p.rn * %(numbers)s + n))::text,
                   'local', '805', 'CA', 'active', %(acquired)s, '2000-01-01T00:00:00Z', true, '', 1.00, '',
                   CASE WHEN n < %(idle)s THEN %(now)s - ((6 + (n * 7 + p.id) %% 34) * interval '1 day')
                        ELSE %(now)s - interval '1 day' END
            FROM (SELECT id, account_id, row_number() OVER (ORDER BY id) AS rn FROM ringpools_ringpool) p,
                 generate_series(0, %(numbers)s - 1) AS n
            """,
            {
                "numbers": numbers,
                "idle": idle_numbers,
                "now": LAST_DAY,
                "acquired": LAST_DAY - timedelta(days=90),
            },
        )
        cursor.execute("VACUUM ANALYZE ringpools_promonumber")
        cursor.execute("VACUUM ANALYZE ringpools_ringpool")


if __name__ == "__main__":
    sys.exit(main())
