"""The hand-out's two implementations on one pool of 20,000 numbers, in one process, same run.

    python bench/handout_steps.py [--numbers 20000] [--claims 2000]

Re-creates BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/ringpool_bench) and seeds
one pool of --numbers numbers bought over a year (so "longest-serving first" has work to do), then,
for the PostgreSQL statement and for the ORM steps in turn: --claims new visitors (claims in the
order of SPEC §3.3), as many renewals a moment later (kept) and two minutes later (written), and
overflows on a pool whose numbers are all held. Prints milliseconds per hand-out (wall, and this
process's CPU), round trips per hand-out, and whether the two implementations handed out the same
numbers in the same order. About 30 s with the defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=20_000)
    parser.add_argument("--claims", type=int, default=2_000)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ringpool_bench")
    sys.path.insert(0, str(ROOT / "bench"))
    from common import recreate_database

    recreate_database(url)
    os.environ.update(
        {"DATABASE_URL": url, "DEBUG": "0", "SECRET_KEY": "bench-only-" + "x" * 40, "LOG_LEVEL": "WARNING"}
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Account
    from ringpools import handout
    from ringpools.handout_steps import _OrmSteps, _PostgresSteps
    from ringpools.models import Campaign, DestinationNumber, PromoNumber, RingPool
    from ringpools.selectors import HandoutPool, handout_pool

    account = Account.objects.create(name="Bench", slug="bench")
    campaign = Campaign.objects.create(account=account, name="Bench")
    destination = DestinationNumber.objects.create(account=account, number="+18055550100")
    now = timezone.now()
    pools: dict[str, HandoutPool] = {}
    for name in ("statement", "orm", "full"):
        pool = RingPool.objects.create(
            account=account, campaign=campaign, destination_number=destination, name=name, key=f"rp_{name}"
        )
        count = 500 if name == "full" else args.numbers
        offset = len(pools) * args.numbers
        PromoNumber.objects.bulk_create(
            (
                PromoNumber(
                    account=account,
                    pool=pool,
                    number=e164(offset + n),
                    number_type="local",
                    acquired_at=now - timedelta(minutes=(n * 7919) % 525_600),
                    **({"busy_until": now + timedelta(days=7), "rested": False} if name == "full" else {}),
                )
                for n in range(count)
            ),
            batch_size=5000,
        )
        loaded = handout_pool(pool.key)
        assert loaded is not None
        pools[name] = loaded
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"seeded two pools of {args.numbers:,} numbers and one of 500 held numbers")

    orders = {}
    print(f"\n{'implementation':<16}{'step':<28}{'ms wall':>9}{'ms cpu':>8}{'queries':>9}")
    for name, steps in (("statement", _PostgresSteps), ("orm", _OrmSteps)):

        def chosen(
            steps: type[_PostgresSteps] | type[_OrmSteps] = steps,
        ) -> type[_PostgresSteps] | type[_OrmSteps]:
            return steps

        handout.steps_for_database = chosen
        asked = pools[name]
        start = timezone.now()
        shown: list[str] = []

        def claims(pool: HandoutPool = asked, shown: list[str] = shown, start: datetime = start) -> None:
            for i in range(args.claims):
                shown.append(present_at(pool, f"visitor-{i:06d}", start).number)

        def kept(pool: HandoutPool = asked, start: datetime = start) -> None:
            for i in range(args.claims):
                present_at(pool, f"visitor-{i:06d}", start + timedelta(seconds=10), keepalive=True)

        def renewed(pool: HandoutPool = asked, start: datetime = start) -> None:
            for i in range(args.claims):
                present_at(pool, f"visitor-{i:06d}", start + timedelta(minutes=2), keepalive=True)

        def overflows(start=start, name=name) -> None:
            for i in range(args.claims):
                present_at(pools["full"], f"{name}-over-{i:06d}", start)

        for label, run in (
            ("claim (new visitor)", claims),
            ("renewal a moment later", kept),
            ("renewal two minutes later", renewed),
            ("overflow (all held)", overflows),
        ):
            executed: list[str] = []

            def count(execute, sql, params, many, context, executed=executed):
                executed.append(1)
                return execute(sql, params, many, context)

            with connection.execute_wrapper(count):
                wall, cpu = time.perf_counter(), time.process_time()
                run()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            per = 1000 / args.claims
            # The statement runs on its own psycopg cursor, outside Django's wrappers: one each.
            round_trips = len(executed) / args.claims if name == "orm" else 1.0
            print(f"{name:<16}{label:<28}{wall * per:>9.3f}{cpu * per:>8.3f}{round_trips:>9.1f}")
        orders[name] = shown
    # Both pools were seeded alike (same acquired_at pattern), so the orders compare by position.
    statement_rank = [(int(n[-7:]) - 1_000_000) % args.numbers for n in orders["statement"]]
    orm_rank = [(int(n[-7:]) - 1_000_000) % args.numbers for n in orders["orm"]]
    print(f"\nsame hand-out order on both implementations: {statement_rank == orm_rank}")
    print("(the statement is one round trip; the ORM's count is Django's queries, transactions included)")
    return 0


def e164(n: int) -> str:
    return f"+1{200 + n // 9_000_000:03d}{1_000_000 + n % 9_000_000:07d}"


def present_at(pool, visitor: str, moment, keepalive: bool = False):
    from ringpools.handout import present_number

    return present_number(pool=pool, visitor_id=visitor, keepalive=keepalive, now=moment)


if __name__ == "__main__":
    raise SystemExit(main())
