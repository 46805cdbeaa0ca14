"""Benchmark of the hand-out against a constant JSON answer, on one gunicorn, in the same run.

    python bench/handout.py [--pools 100] [--numbers 200] [--connections 32] [--seconds 20] [--workers 4]

Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/ringpool_bench — the
database is dropped and re-created) and wrk (apt-get install wrk). Prints requests/s and p50/p99 for
GET /livez and POST /api/v1/ringpools/<key>/numbers, their ratio, the 5xx count, and the double-holds
found by checking every promo answer (two visitors told they hold one number at overlapping times).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--numbers", type=int, default=200)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--new-share", type=float, default=0.3, help="share of requests from new visitors")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--sql", action="append", default=[], help="SQL to run after seeding (experiments)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ringpool_bench")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_hex(32),
        "RINGPOOL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }
    recreate_database(database_url)
    run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env)
    keys = seed(env, args.pools, args.numbers, args.sql)
    print(f"seeded {args.pools} pools x {args.numbers} numbers")

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for(f"http://127.0.0.1:{args.port}/livez")
        out = Path(tempfile.mkdtemp(prefix="ringpool-bench-"))
        wrk_env = {
            **env,
            "BENCH_POOL_KEYS": ",".join(keys),
            "BENCH_NEW_SHARE": str(args.new_share),
            "BENCH_OUT": str(out),
        }
        base = f"http://127.0.0.1:{args.port}"
        # Warm both paths (connections, caches), then measure the baseline, the hand-out, the baseline again.
        wrk(base + "/livez", "livez.lua", 3, args.connections, wrk_env)
        wrk(base + "/api/v1/ringpools/x/numbers", "handout.lua", 3, args.connections, wrk_env)
        for f in out.glob("holds-*.txt"):
            f.unlink()
        live_1 = wrk(base + "/livez", "livez.lua", args.seconds, args.connections, wrk_env)
        handout = wrk(
            base + "/api/v1/ringpools/x/numbers", "handout.lua", args.seconds, args.connections, wrk_env
        )
        live_2 = wrk(base + "/livez", "livez.lua", args.seconds, args.connections, wrk_env)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    holds, promo_answers, visitors = double_holds(out)
    baseline_rps = (rps(live_1) + rps(live_2)) / 2
    print()
    print(f"{'endpoint':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for name, result in (
        ("GET /livez (before)", live_1),
        ("POST hand-out", handout),
        ("GET /livez (after)", live_2),
    ):
        print(
            f"{name:<34}{rps(result):>10.0f}{result['p50_ms']:>10.2f}{result['p99_ms']:>10.2f}"
            f"{result['non_2xx']:>10}"
        )
    print()
    print(f"ratio hand-out / livez: {rps(handout) / baseline_rps:.2f}")
    print(f"promo answers checked: {promo_answers} for {visitors} visitors; double-holds: {holds}")
    print(
        f"config: {args.pools} pools x {args.numbers} numbers, {args.connections} connections, "
        f"{args.workers} gunicorn workers, {args.seconds}s each, new-visitor share {args.new_share}"
    )
    shutil.rmtree(out, ignore_errors=True)
    return 0


def rps(result: dict) -> float:
    return result["requests"] / result["seconds"]


def run(command: list[str], env: dict) -> None:
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def recreate_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def seed(env: dict, pools: int, numbers: int, experiments: list[str]) -> list[str]:
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DEBUG", "SECRET_KEY")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.utils import timezone

    from accounts.models import Account
    from ringpools.models import Campaign, DestinationNumber, PromoNumber, RingPool

    account = Account.objects.create(name="Bench", slug="bench")
    campaign = Campaign.objects.create(account=account, name="Bench")
    destination = DestinationNumber.objects.create(account=account, number="+18055550100")
    created = RingPool.objects.bulk_create(
        RingPool(
            account=account,
            campaign=campaign,
            destination_number=destination,
            name=f"Bench {i}",
            key=f"rp_bench_{i:04d}",
            area_code="805",
        )
        for i in range(pools)
    )
    now = timezone.now()
    PromoNumber.objects.bulk_create(
        (
            PromoNumber(
                account=account,
                pool=pool,
                number=f"+1{200 + p:03d}{5550000 + n:07d}",
                number_type="local",
                area_code=f"{200 + p:03d}",
                acquired_at=now,
            )
            for p, pool in enumerate(created)
            for n in range(numbers)
        ),
        batch_size=5000,
    )
    from django.db import connection

    with connection.cursor() as cursor:
        for sql in experiments:
            print(f"experiment: {sql}")
            cursor.execute(sql)
        cursor.execute("VACUUM ANALYZE")
    connection.close()
    return [pool.key for pool in created]


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def wrk(url: str, script: str, seconds: int, connections: int, env: dict) -> dict:
    # One connection per wrk thread: each thread then knows which visitor an answer belongs to.
    result = subprocess.run(
        [
            "wrk",
            "-t",
            str(connections),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(BENCH / script),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def double_holds(folder: Path) -> tuple[int, int, int]:
    """Two different visitors whose answered hold on one number overlap in time."""
    held: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    answers = 0
    visitors = set()
    for path in folder.glob("holds-*.txt"):
        for line in path.read_text().splitlines():
            visitor, number, expires = line.split(" ")
            ends = datetime.fromisoformat(expires)
            held[number].append((ends - timedelta(minutes=30), ends, visitor))
            answers += 1
            visitors.add(visitor)
    found = 0
    for spans in held.values():
        spans.sort()
        # Merge each visitor's consecutive renewals into one hold, then compare neighbours.
        merged: list[list] = []
        for start, end, visitor in spans:
            if merged and merged[-1][2] == visitor and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end, visitor])
        found += sum(1 for a, b in itertools.pairwise(merged) if a[2] != b[2] and b[0] < a[1])
    return found, answers, len(visitors)


if __name__ == "__main__":
    raise SystemExit(main())
