"""The visitor API with the rate limits' Redis hanging, against the same API with Redis healthy, in one run.

    python bench/redis_hang.py [--seconds 10] [--rounds 3] [--connections 8] [--workers 3]

Needs PostgreSQL, Redis and wrk, as bench/handout.py (whose seeding, gunicorn and wrk harness it uses).
Two gunicorns on the same bench database: one counting its rate limits in the real Redis, one in a
"Redis" that accepts connections and never answers (a TCP listener that never reads: the kernel
completes the handshake, every reply waits). Each round measures, on both, the promo path (new
visitors, each from its own address) and the mix (30 % new, the rest renewing, which asks Redis for
nearly every request), alternated so that a neighbour's burst hits both alike. Prints each path's
median round: req/s of each, the hanging one's ratio to the healthy one (target: within 20 %, so at
least 0.80) and the hanging one's p99 (target: under 100 ms).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import recreate_database
from cryptography.fernet import Fernet
from handout import ROOT, Phase, Server, seed

RATIO_TARGET, P99_TARGET_MS = 0.8, 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--new-share", type=float, default=0.3, help="share of new visitors in the mix")
    parser.add_argument("--port", type=int, default=8775)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    # A Redis that hangs: connections are accepted by the kernel, nothing is ever read or answered.
    hanging = socket.create_server(("127.0.0.1", 0), backlog=1024)
    hanging_url = f"redis://127.0.0.1:{hanging.getsockname()[1]}/0"
    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ringpool_bench")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_hex(32),
        "RINGPOOL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "ERROR",
        "BEHIND_TLS_PROXY": "1",
        "RINGPOOL_TRUSTED_PROXY_HOPS": "1",
        "RINGPOOL_RATE_LIMIT_URL": os.environ.get("BENCH_RATE_LIMIT_URL", "redis://127.0.0.1:6379/15"),
    }
    started = time.monotonic()
    recreate_database(database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    keys = seed(env, big_pools=args.rounds)  # one 20,000-number pool per round, shared: 2 phases fit
    print(f"seeded in {time.monotonic() - started:.0f}s; the hanging Redis: {hanging_url}")
    out = Path(tempfile.mkdtemp(prefix="ringpool-bench-"))
    base_env = {**env, "BENCH_OUT": str(out), "BENCH_NEW_SHARE": str(args.new_share)}
    healthy_args = argparse.Namespace(**{**vars(args), "port": args.port})
    hanging_args = argparse.Namespace(**{**vars(args), "port": args.port + 1})
    results: dict[str, list[tuple[Phase, Phase]]] = {"promo": [], "mix": []}
    with (
        Server(healthy_args, env, database_url) as healthy,
        Server(hanging_args, {**env, "RINGPOOL_RATE_LIMIT_URL": hanging_url}, database_url) as stalled,
    ):
        serial = 0

        def measure(server: Server, name: str, mode: str, pool_keys: str) -> Phase:
            nonlocal serial
            serial += 1
            extra = {"BENCH_MODE": mode, "BENCH_POOL_KEYS": pool_keys, "BENCH_PHASE": f"{mode}{serial}"}
            return server.measure(name, "visitors.lua", "/", args.seconds, {**base_env, **extra})

        for server in (healthy, stalled):  # warm-up: the hanging one opens its breakers here
            measure(server, "warm-up", "mix", ",".join(keys["mix"]))
        for number in range(args.rounds):
            for path, mode, pool_keys in (
                ("promo", "new", (keys["big"][number],) * 2),
                ("mix", "mix", (",".join(keys["mix"]),) * 2),
            ):
                pair = (
                    measure(healthy, f"{path}, Redis healthy", mode, pool_keys[0]),
                    measure(stalled, f"{path}, Redis hanging", mode, pool_keys[1]),
                )
                results[path].append(pair)
    hanging.close()
    shutil.rmtree(out, ignore_errors=True)
    report(results, args)
    print(f"whole run: {time.monotonic() - started:.0f}s")
    return 0


def report(results: dict[str, list[tuple[Phase, Phase]]], args: argparse.Namespace) -> None:
    print()
    columns = f"{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>9}{'5xx':>5}{'cpu web':>9}"
    print(f"{'path (median round)':<26}{columns}")
    for path, pairs in results.items():
        ordered = sorted(pairs, key=lambda pair: pair[1].rps / pair[0].rps)
        healthy, stalled = ordered[(len(ordered) - 1) // 2]
        for phase in (healthy, stalled):
            r = phase.result
            print(
                f"{phase.name:<26}{phase.rps:>8.0f}{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['non_2xx']:>9}"
                f"{r['errors_5xx']:>5}{phase.cpu_per_request(phase.gunicorn_cpu_ms):>9.2f}"
            )
        ratio = stalled.rps / healthy.rps
        p99 = statistics.median(pair[1].result["p99_ms"] for pair in pairs)
        rounds = " ".join(f"{pair[1].rps / pair[0].rps:.2f}" for pair in pairs)
        print(
            f"  {path}: hanging/healthy {ratio:.2f} (target >= {RATIO_TARGET}) "
            f"{'ok' if ratio >= RATIO_TARGET else 'BELOW'}; "
            f"hanging p99 {p99:.1f} ms (target < {P99_TARGET_MS:.0f}) "
            f"{'ok' if p99 < P99_TARGET_MS else 'ABOVE'}; rounds: {rounds}"
        )
    workers = f"{args.workers} gunicorn workers"
    print(f"config: {args.connections} connections, {workers}, {args.rounds} rounds of {args.seconds}s")


if __name__ == "__main__":
    sys.exit(main())
