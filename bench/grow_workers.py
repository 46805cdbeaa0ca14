"""Benchmark of growth at a real carrier's speed: Beat's grow pass decides and queues, Celery workers buy.

    python bench/grow_workers.py [--pools 1000] [--latency 1.0] [--workers 1,2,4,8] [--series-pools 100]

Needs PostgreSQL and Redis. BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/
ringpool_bench_workers) is dropped and re-created; BENCH_BROKER_URL (default redis://127.0.0.1:6379/13)
is the broker, flushed first. The inventory carrier answers every call after --latency seconds
(RINGPOOL_INVENTORY_LATENCY_SECONDS; a real carrier takes about a second per search and per purchase).

For each worker count of --workers, --series-pools due pools (one number due each) are grown by a
real `celery worker --concurrency N` on the carrier queue; then --pools pools with the largest count,
the campaign-launch case. Prints, per run: the pass's own time (decide and queue), the time until the
last number is in its pool, numbers per minute, the speed-up over one worker, and whether the growth
fits in one pace interval (5 minutes). Every run ends with its books checked: every order done, every
pool grown by exactly one number, the carrier's sold numbers exactly the pools' new numbers.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import recreate_database
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
PACE_SECONDS = 300


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--series-pools", type=int, default=100)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--workers", default="1,2,4,8")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ringpool_bench_workers")
    broker = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": broker,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_hex(32),
        "RINGPOOL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "LOG_LEVEL": "WARNING",
        "RINGPOOL_CARRIER": "inventory",
        "RINGPOOL_CARRIER_CONCURRENCY": str(max(counts) + 2),
    }
    recreate_database(url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(
        {k: env[k] for k in ("DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY", "LOG_LEVEL")}
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import redis

    redis.Redis.from_url(broker).flushdb()
    worker_env = {**env, "RINGPOOL_INVENTORY_LATENCY_SECONDS": str(args.latency)}

    runs = [(n, args.series_pools) for n in counts] + [(max(counts), args.pools)]
    rows = []
    for workers, pools in runs:
        rows.append(grow_run(workers=workers, pools=pools, env=worker_env))
        row = rows[-1]
        print(
            f"  {workers} workers, {pools} pools: pass {row['pass']:.2f} s, grown in {row['grown']:.1f} s "
            f"({row['retried']} orders needed a second attempt)",
            flush=True,
        )

    one = {row["pools"]: row["grown"] for row in rows if row["workers"] == 1}
    print()
    print(f"carrier latency {args.latency:.2f} s per call (search, purchase); 5 orders per task")
    print(
        "| workers | due pools | pass: decide and queue (s) | all grown (s) | numbers/min | speed-up "
        "| within 5 min |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        base = one.get(row["pools"])
        speedup = f"{base / row['grown']:.2f}x" if base else "—"
        per_minute = row["pools"] / row["grown"] * 60
        fits = "yes" if row["grown"] <= PACE_SECONDS else "NO"
        print(
            f"| {row['workers']} | {row['pools']} | {row['pass']:.2f} | {row['grown']:.1f} | "
            f"{per_minute:.0f} | {speedup} | {fits} |"
        )
    return 0


def grow_run(*, workers: int, pools: int, env: dict[str, str]) -> dict:
    from django.utils import timezone

    from ringpools.models import RingPool
    from scaling.choices import OrderState
    from scaling.growth.run import ringpools_grow
    from scaling.models import CarrierOrder, InventoryNumber
    from scaling.supply.outbox import carrier_orders_dispatch
    from scaling.tasks import carrier_orders_queue

    measured = setup_pools(pools)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(workers),
            "--queues",
            "carrier",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        time.sleep(3 + workers * 0.3)  # the worker's processes up and consuming
        RingPool.objects.filter(pk__in=measured).update(last_overflow_at=timezone.now())
        started = time.monotonic()
        report = ringpools_grow(dispatch=carrier_orders_queue)
        decided = time.monotonic() - started
        assert report.queued == pools, (report.queued, pools)
        reconciled = started
        while CarrierOrder.objects.filter(pool_id__in=measured, state=OrderState.PENDING).exists():
            if worker.poll() is not None:
                raise SystemExit(f"the worker stopped (exit {worker.returncode})")
            if time.monotonic() - reconciled >= 60:  # what Beat's reconcile pass does every minute
                reconciled = time.monotonic()
                carrier_orders_queue(carrier_orders_dispatch(now=timezone.now()))
            time.sleep(0.25)
        retried = CarrierOrder.objects.filter(pool_id__in=measured, attempts__gt=1).count()
        grown = time.monotonic() - started
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    done = CarrierOrder.objects.filter(pool_id__in=measured, state=OrderState.DONE).count()
    assert done == pools, f"{done} of {pools} orders done"
    sold = InventoryNumber.objects.filter(sold_to__isnull=False).count()
    held = RingPool.objects.filter(pk__in=measured).count()
    assert held == pools and sold >= pools
    return {"workers": workers, "pools": pools, "pass": decided, "grown": grown, "retried": retried}


_account = None


def setup_pools(count: int) -> list[int]:
    """`count` fresh pools of two numbers, seen with auto-scaling on, and stock for each."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import Account
    from ringpools.models import Campaign, DestinationNumber, PromoNumber, RingPool
    from scaling.growth.run import ringpools_grow
    from scaling.models import AutoScalingSettings, InventoryNumber
    from scaling.supply.inventory import InventoryCarrier

    global _account
    now = timezone.now()
    if _account is None:
        _account = Account.objects.create(name="Bench", slug="bench")
        AutoScalingSettings.objects.create(account=_account)
    # The earlier runs' pools stop overflowing and leave the pass: only these are due.
    RingPool.objects.update(is_active=False)
    campaign = Campaign.objects.create(account=_account, name=f"Bench {now:%H%M%S%f}")
    destination, _ = DestinationNumber.objects.get_or_create(account=_account, number="+18055550100")
    start = RingPool.objects.count()
    pools = RingPool.objects.bulk_create(
        RingPool(
            account=_account,
            campaign=campaign,
            destination_number=destination,
            name=f"Pool {start + i}",
            key=f"rp_bench_{start + i}",
            area_code="805",
            region="CA",
        )
        for i in range(count)
    )
    serial = PromoNumber.objects.count()
    PromoNumber.objects.bulk_create(
        PromoNumber(
            account=_account,
            pool=pool,
            number=f"+1805{2000000 + serial + 2 * i + j:07d}",
            number_type="local",
            area_code="805",
            region="CA",
            acquired_at=now,
        )
        for i, pool in enumerate(pools)
        for j in range(2)
    )
    stocked = InventoryNumber.objects.count()
    InventoryNumber.objects.bulk_create(
        InventoryNumber(
            number=f"+1805{6000000 + stocked + i:07d}", number_type="local", area_code="805", region="CA"
        )
        for i in range(count + 50)
    )
    ringpools_grow(now=now - timedelta(minutes=10), carrier=InventoryCarrier(latency=0))  # seen on
    return [pool.pk for pool in pools]


if __name__ == "__main__":
    sys.exit(main())
