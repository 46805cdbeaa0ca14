"""Benchmark of one grow pass: 10,000 active pools of which 100 overflowed, on PostgreSQL.

    python bench/grow.py [--pools 10000] [--overflowed 100] [--rounds 3]

Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/ringpool_bench_grow —
the database is dropped and re-created). In the same run it measures a pass over only the overflowed
pools (the baseline), then adds the idle pools and measures again: wall time and query count of each,
and their ratios. The idle pools must not change the query count. The carrier is the inventory
carrier (its stock is in the same database), so every purchase costs real queries too.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from common import recreate_database

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=10_000)
    parser.add_argument("--overflowed", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="passes measured per set-up (median shown)")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ringpool_bench_grow")
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "0", "SECRET_KEY": secrets.token_hex(32)}
    env["LOG_LEVEL"] = "WARNING"
    recreate_database(url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DEBUG", "SECRET_KEY", "LOG_LEVEL")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()

    bench = Bench(overflowed=args.overflowed, rounds=args.rounds)
    baseline = bench.measure(f"{args.overflowed} pools, all overflowed (baseline)")
    bench.add_idle_pools(args.pools - args.overflowed)
    first = bench.first_sight()
    full = bench.measure(f"{args.pools} pools, {args.overflowed} overflowed")
    idle = bench.measure(f"{args.pools} pools, none overflowed (the fixed cost)", overflow=False)
    planned = bench.measure(f"{args.pools} pools, {args.overflowed} overflowed, --dry-run", dry_run=True)

    print()
    print("| pass | pools | overflowed | added | wall s (median) | queries |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in (baseline, first, full, idle, planned):
        cells = (row["label"], row["pools"], row["due"], row["added"], f"{row['wall']:.3f}", row["queries"])
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    print()
    idle = args.pools - args.overflowed
    print(f"queries with {idle} idle pools / without: {full['queries'] / baseline['queries']:.2f}")
    print(f"wall time with idle pools / without: {full['wall'] / baseline['wall']:.2f}")
    print(
        f"floor: under 2 s -> {'met' if full['wall'] < 2 else 'NOT met'}; aim 0.5 s -> "
        f"{'met' if full['wall'] < 0.5 else 'not met'}"
    )
    return 0


class Bench:
    def __init__(self, *, overflowed: int, rounds: int) -> None:
        from django.utils import timezone

        from accounts.models import Account
        from ringpools.models import Campaign, DestinationNumber
        from scaling.models import AutoScalingSettings

        self.rounds = rounds
        self.now = timezone.now()
        self.account = Account.objects.create(name="Bench", slug="bench")
        AutoScalingSettings.objects.create(account=self.account)
        self.campaign = Campaign.objects.create(account=self.account, name="Bench")
        self.destination = DestinationNumber.objects.create(account=self.account, number="+18055550100")
        self.serial = 0
        self.overflowing = self._pools(overflowed)
        self._stock(overflowed * (2 * rounds + 2))
        self._pass(self.now)  # auto-scaling seen on for these pools

    def _pools(self, count: int) -> list[int]:
        from ringpools.models import PromoNumber, RingPool

        pools = RingPool.objects.bulk_create(
            [
                RingPool(
                    account=self.account,
                    campaign=self.campaign,
                    destination_number=self.destination,
                    name=f"Pool {self.serial + i}",
                    key=f"rp_bench_{self.serial + i}",
                    area_code="805",
                    region="CA",
                )
                for i in range(count)
            ],
            batch_size=2000,
        )
        self.serial += count
        numbers = []
        for pool in pools:
            for _ in range(2):
                self.serial += 1
                numbers.append(
                    PromoNumber(
                        account=self.account,
                        pool=pool,
                        number=f"+1805{2000000 + self.serial:07d}",
                        number_type="local",
                        area_code="805",
                        region="CA",
                        acquired_at=self.now,
                    )
                )
        PromoNumber.objects.bulk_create(numbers, batch_size=5000)
        return [pool.pk for pool in pools]

    def _stock(self, count: int) -> None:
        from scaling.models import InventoryNumber

        InventoryNumber.objects.bulk_create(
            [
                InventoryNumber(
                    number=f"+1805{6000000 + i:07d}", number_type="local", area_code="805", region="CA"
                )
                for i in range(count)
            ]
        )

    def add_idle_pools(self, count: int) -> None:
        from ringpools.models import RingPool

        idle = self._pools(count)
        # Idle pools overflowed once, long ago: they have a last growth after it, or never overflowed.
        RingPool.objects.filter(pk__in=idle[: count // 2]).update(
            last_overflow_at=self.now - timedelta(days=3)
        )
        self._vacuum()

    def first_sight(self) -> dict:
        """The first pass after the idle pools appeared creates their growth rows, once."""
        return self._timed(
            "first pass after the idle pools appeared (their rows created once)", self._advance()
        )

    def measure(self, label: str, *, dry_run: bool = False, overflow: bool = True) -> dict:
        rows = [self._timed(label, self._advance(overflow), dry_run) for _ in range(self.rounds)]
        middle = sorted(rows, key=lambda row: row["wall"])[len(rows) // 2]
        middle["wall"] = statistics.median(row["wall"] for row in rows)
        return middle

    def _advance(self, overflow: bool = True):
        from ringpools.models import RingPool

        self.now += timedelta(minutes=6)
        if overflow:
            RingPool.objects.filter(pk__in=self.overflowing).update(
                last_overflow_at=self.now - timedelta(seconds=20)
            )
        return self.now

    def _timed(self, label: str, now, dry_run: bool = False) -> dict:
        from django.db import connection

        from ringpools.models import RingPool
        from scaling.applicability import applicable_pools

        timings: list[tuple[float, str]] = []

        def counted(execute, sql, params, many, context):
            began = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                timings.append((time.perf_counter() - began, sql))

        with connection.execute_wrapper(counted):
            started = time.perf_counter()
            report = self._pass(now, dry_run)
            wall = time.perf_counter() - started
        if os.environ.get("BENCH_SLOWEST"):
            for seconds, sql in sorted(timings, reverse=True)[: int(os.environ["BENCH_SLOWEST"])]:
                print(f"{seconds * 1000:8.1f} ms  {sql[:300]}")
        return {
            "label": label,
            "pools": RingPool.objects.count(),
            "due": len(report.plans),
            "added": report.added,
            "wall": wall,
            "queries": len(timings),
            "applicable": applicable_pools().count(),
        }

    def _pass(self, now, dry_run: bool = False):
        from scaling.growth.run import ringpools_grow
        from scaling.supply.inventory import InventoryCarrier

        return ringpools_grow(now=now, carrier=InventoryCarrier(), dry_run=dry_run)

    def _vacuum(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


if __name__ == "__main__":
    sys.exit(main())
