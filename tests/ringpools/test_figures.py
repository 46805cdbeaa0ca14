"""Hourly figures and the overflow facts growth reads, counted per web process and written about once a
second: exact after the flush, and nothing lost when a process exits cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.db import connection, connections
from django.db.models import Sum
from django.test import Client

from ringpools.choices import NumberRole, OverflowMode
from ringpools.figures import handout_figures
from ringpools.models import PoolHourlyFigures, PromoNumber, RingPool
from tests.factories import PromoNumberFactory, RingPoolFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 26, 15, 59, 59, 500000, tzinfo=UTC)  # half a second before the hour turns
FLUSH = 0.2


@pytest.fixture(autouse=True)
def _buffered(settings):
    settings.RINGPOOL_FIGURES_FLUSH_SECONDS = FLUSH
    settings.RINGPOOL_RATE_LIMIT_URL = "off"
    yield
    handout_figures.stop()  # its connection would keep the test database from being dropped


def hourly(pool: RingPool) -> dict[datetime, tuple[int, int]]:
    rows = (
        PoolHourlyFigures.objects.filter(pool=pool)
        .values("hour")
        .annotate(p=Sum("presentations"), o=Sum("overflows"))
        .order_by()
    )
    return {row["hour"]: (row["p"], row["o"]) for row in rows}


def burst(pool: RingPool, visitors: list[str]) -> list[str]:
    barrier = threading.Barrier(len(visitors))

    def one(visitor: str) -> str:
        try:
            barrier.wait()
            response = Client().post(
                f"/api/v1/ringpools/{pool.key}/numbers",
                data=json.dumps({"visitor_id": visitor}),
                content_type="application/json",
            )
            return response.json()["kind"]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(visitors)) as threads:
        return list(threads.map(one, visitors))


def test_a_burst_of_presentations_and_overflows_reads_back_exact_after_the_flush():
    pool = RingPoolFactory(overflow_mode=OverflowMode.OVERFLOW_NUMBER)
    for _ in range(5):
        PromoNumberFactory(pool=pool)
    overflow = PromoNumberFactory(pool=pool, role=NumberRole.OVERFLOW)
    with time_machine.travel(T0, tick=False):
        first = burst(pool, [f"early-{i:04d}" for i in range(20)])
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        second = burst(pool, [f"late-{i:04d}" for i in range(20)])
    assert first.count("promo") == 5 and second.count("overflow") == 20
    time.sleep(FLUSH * 4)
    # 15 overflows in the hour that ended, 20 in the next; every request was a presentation.
    hour = T0.replace(minute=0, second=0, microsecond=0)
    assert hourly(pool) == {hour: (20, 15), hour + timedelta(hours=1): (20, 20)}
    assert RingPool.objects.get(pk=pool.pk).last_overflow_at == T0 + timedelta(seconds=1)
    assert PromoNumber.objects.get(pk=overflow.pk).last_presented_at == T0 + timedelta(seconds=1)


def test_an_overflow_is_on_the_pool_within_the_flush_interval():
    pool = RingPoolFactory()
    started = time.monotonic()
    assert burst(pool, ["lonely-0001"]) == ["destination"]
    while RingPool.objects.get(pk=pool.pk).last_overflow_at is None:
        assert time.monotonic() - started < 1.0, "not written within a second"
        time.sleep(0.02)


EXIT_CLEANLY = """
import django, sys
django.setup()
from django.utils import timezone
from ringpools.handout import present_number
from ringpools.selectors import handout_pool
pool = handout_pool(sys.argv[1])
for i in range(int(sys.argv[2])):
    present_number(pool=pool, visitor_id=f"exiting-{i:06d}")
"""


def test_nothing_is_lost_when_a_worker_process_exits_cleanly():
    pool = RingPoolFactory()
    for _ in range(3):
        PromoNumberFactory(pool=pool)
    settings_dict = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": (
            f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}"
            f"/{settings_dict['NAME']}"
        ),
        "RINGPOOL_FIGURES_FLUSH_SECONDS": "3600",  # only the exit writes them
    }
    done = subprocess.run(
        [sys.executable, "-c", EXIT_CLEANLY, pool.key, "10"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert sum(p for p, _ in hourly(pool).values()) == 10
    assert sum(o for _, o in hourly(pool).values()) == 7
    assert RingPool.objects.get(pk=pool.pk).last_overflow_at is not None
