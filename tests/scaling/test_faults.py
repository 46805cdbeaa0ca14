"""The fault suite: real processes on PostgreSQL (and Redis for the workers and Beats), each fault of
the jobs reproduced — concurrent grow passes, SIGKILL and SIGSTOP at each step of a purchase and of a
release, carrier time-outs and 429s, a worker killed mid-task, two Beats — and each ending, read from
the database and the carrier's stock, with 0 orphans (bought, in no pool), 0 phantoms (in a pool, not
bought), and every due growth done exactly once.

The processes run the product's own commands (`grow_ringpools`, `reconcile_carrier`), Celery workers
and Beats, with `tests.faulty_carrier.FaultyCarrier`: the inventory carrier that meets one fault at
one point (tests/faulty_carrier.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from ringpools.choices import NumberRole, NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.choices import EventKind, OrderState, Trigger
from scaling.growth.run import ringpools_grow
from scaling.models import BeatLease, BeatProcess, CarrierOrder, InventoryNumber, PoolGrowth, ScalingEvent
from scaling.services import pool_number_add
from scaling.supply.inventory import InventoryCarrier
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def process_env(tmp_path: Path, fault: str = "", **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "RINGPOOL_CARRIER": "tests.faulty_carrier.FaultyCarrier",
        "RINGPOOL_FAULT": fault,
        "RINGPOOL_FAULT_MARK": str(tmp_path / "fault-met"),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def manage(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finished(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out + err


def reconcile(tmp_path: Path) -> str:
    """What an operator (or Beat's next passes) runs afterwards: a process with no fault."""
    code, output = finished(manage(process_env(tmp_path), "reconcile_carrier", "--numbers"))
    assert code == 0, output
    return output


def wait_until_stopped(process: subprocess.Popen[str], mark: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mark.exists() and Path(f"/proc/{process.pid}/stat").read_text().split(") ")[1][0] == "T":
            return
        assert process.poll() is None, finished(process)[1]
        time.sleep(0.05)
    raise AssertionError("the process never reached its fault")


def due_pools(count: int, *, at, stock: int = 10) -> list[RingPool]:
    """Pools of one number each, seen with auto-scaling on, that overflowed just before `at`."""
    pools = []
    for _ in range(count):
        pool = factories.RingPoolFactory(area_code="805", max_size=50)
        factories.PromoNumberFactory(pool=pool)
        pools.append(pool)
    factories.InventoryNumberFactory.create_batch(stock)
    ringpools_grow(now=at - timedelta(minutes=10), carrier=InventoryCarrier())
    overflow(pools, at - timedelta(seconds=10))
    return pools


def overflow(pools: list[RingPool], at) -> None:
    RingPool.objects.filter(pk__in=[pool.pk for pool in pools]).update(last_overflow_at=at)


def rotating(pool: RingPool) -> int:
    return pool.numbers.filter(state=NumberState.ACTIVE, role=NumberRole.ROTATING).count()


def assert_books_balance() -> None:
    """0 orphans, 0 phantoms: the carrier sells us exactly the numbers in our pools, and nothing is
    left half-done (no pending order, no number on its way out)."""
    sold = {
        str(n) for n in InventoryNumber.objects.filter(sold_to__isnull=False).values_list("number", flat=True)
    }
    held = {
        str(n)
        for n in PromoNumber.objects.filter(
            state=NumberState.ACTIVE, carrier_ref__startswith="INV"
        ).values_list("number", flat=True)
    }
    assert sold - held == set(), "orphans: bought, in no pool"
    assert held - sold == set(), "phantoms: in a pool, not bought"
    assert not PromoNumber.objects.filter(state=NumberState.RELEASING).exists()
    assert not CarrierOrder.objects.filter(state=OrderState.PENDING).exists()


def added_by_growth(pool: RingPool) -> int:
    return ScalingEvent.objects.filter(pool=pool, kind=EventKind.NUMBER_ADDED, trigger=Trigger.GROWTH).count()


@pytest.fixture
def moment():
    """An hour ago: the passes run `--at` it, and every claim they take has lapsed by now."""
    return (timezone.now() - timedelta(hours=1)).replace(microsecond=0)


# --- Concurrent passes ----------------------------------------------------------------------------


def test_four_grow_passes_at_once_round_after_round_grow_each_due_pool_exactly_once(tmp_path, moment):
    pools = due_pools(5, at=moment, stock=60)
    env = process_env(tmp_path)
    for round_ in range(6):
        at = moment + timedelta(minutes=5 * round_)
        overflow(pools, at - timedelta(seconds=10))
        passes = [manage(env, "grow_ringpools", "--at", at.isoformat()) for _ in range(4)]
        outputs = [finished(p) for p in passes]
        assert all(code == 0 for code, _ in outputs), outputs
        assert [rotating(pool) for pool in pools] == [2 + round_] * 5, outputs
    assert [added_by_growth(pool) for pool in pools] == [6] * 5
    assert not ScalingEvent.objects.filter(kind=EventKind.FAILED).exists()
    assert_books_balance()


# --- A purchase killed or frozen at each step ------------------------------------------------------


@pytest.mark.parametrize("point", ["find_available", "purchase", "purchase_after"])
def test_a_grow_pass_killed_at_any_step_of_a_purchase_loses_nothing(tmp_path, moment, point):
    (pool,) = due_pools(1, at=moment)
    code, output = finished(
        manage(process_env(tmp_path, f"{point}:KILL"), "grow_ringpools", "--at", moment.isoformat())
    )
    assert code == -signal.SIGKILL, output
    # Died after the decision: the decision and its order are one record, the order still pending.
    assert PoolGrowth.objects.get(pool=pool).last_grown_at == moment
    assert CarrierOrder.objects.get(pool=pool).state == OrderState.PENDING

    reconcile(tmp_path)

    assert rotating(pool) == 2 and added_by_growth(pool) == 1
    assert_books_balance()


@pytest.mark.parametrize("point", ["find_available", "purchase", "purchase_after"])
def test_a_grow_pass_frozen_past_its_claim_then_resumed_leaves_no_orphan(tmp_path, moment, point):
    (pool,) = due_pools(1, at=moment)
    frozen = manage(process_env(tmp_path, f"{point}:STOP"), "grow_ringpools", "--at", moment.isoformat())
    try:
        wait_until_stopped(frozen, tmp_path / "fault-met")
        # Frozen inside the purchase, it is about to buy the number on the order. The carrier's
        # search answers at random, so the finishing process could pick that same number (then the
        # frozen one is refused and buys nothing); held back while the order is finished, it is
        # still on sale when the frozen process resumes, as the case under test needs.
        offer = CarrierOrder.objects.get(pool=pool).offer
        offered = InventoryNumber.objects.filter(number=offer.get("number"))
        if point == "purchase":
            offered.update(sold_to=pool.account, sold_at=timezone.now())
        reconcile(tmp_path)  # its claim lapsed long ago: another process finishes the order
        assert rotating(pool) == 2
        if point == "purchase":
            offered.update(sold_to=None, sold_at=None)  # back on sale, as the frozen process saw it
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    code, output = finished(frozen)  # resumed: buys (or has bought) under the finished order
    assert code == 0, output

    assert rotating(pool) == 2 and added_by_growth(pool) == 1
    reconciled = ScalingEvent.objects.filter(pool=pool, kind=EventKind.RECONCILED)
    if point == "purchase":  # frozen inside the purchase: it bought a second number, released at once
        assert "after it was closed" in reconciled.get().reason
    else:  # frozen in the search: its claim was gone, it bought nothing; frozen after: nothing to do
        assert not reconciled.exists()
    assert_books_balance()


@pytest.mark.parametrize(
    "fault", ["purchase:TRANSIENT", "purchase_after:TRANSIENT", "find_available:TRANSIENT"]
)
def test_carrier_time_outs_and_429s_are_retried_until_the_due_number_is_in_the_pool(tmp_path, moment, fault):
    (pool,) = due_pools(1, at=moment)
    code, output = finished(
        manage(process_env(tmp_path, fault), "grow_ringpools", "--at", moment.isoformat())
    )
    assert code == 0 and "1 to retry (the carrier did not answer: 429" in output, output

    reconcile(tmp_path)

    assert rotating(pool) == 2 and added_by_growth(pool) == 1
    assert_books_balance()


# --- A release killed or frozen -------------------------------------------------------------------

RELEASE = """
import django; django.setup()
from ringpools.models import PromoNumber
from scaling.services import pool_number_remove
pool_number_remove(number=PromoNumber.objects.get(pk={pk}), trigger="manual", reason="fault suite")
"""


@pytest.mark.parametrize("fault", ["release:KILL", "release_after:KILL", "release:STOP"])
def test_a_release_killed_or_frozen_at_any_step_ends_released_and_never_back_in_rotation(tmp_path, fault):
    pool = factories.RingPoolFactory(area_code="805")
    factories.InventoryNumberFactory.create_batch(3)
    number = pool_number_add(
        pool=pool, trigger=Trigger.MANUAL, reason="bought", carrier=InventoryCarrier()
    ).number
    env = process_env(tmp_path, fault, RINGPOOL_CARRIER_CLAIM_SECONDS="1")
    remover = subprocess.Popen(
        [sys.executable, "-c", RELEASE.format(pk=number.pk)],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if fault.endswith("STOP"):
        wait_until_stopped(remover, tmp_path / "fault-met")
    else:
        assert finished(remover)[0] == -signal.SIGKILL
    number.refresh_from_db()
    assert number.state == NumberState.RELEASING  # out of rotation from the first step

    time.sleep(1.1)  # the dead (or frozen) process's claim lapses
    code, output = finished(
        manage(process_env(tmp_path, RINGPOOL_CARRIER_CLAIM_SECONDS="1"), "reconcile_carrier")
    )
    assert code == 0, output
    if fault.endswith("STOP"):
        os.kill(remover.pid, signal.SIGCONT)
        assert finished(remover)[0] == 0

    number.refresh_from_db()
    assert number.state == NumberState.RELEASED
    assert ScalingEvent.objects.filter(number=number, kind=EventKind.NUMBER_RELEASED).count() == 1
    assert_books_balance()


# --- The carrier's list and ours ------------------------------------------------------------------


def test_reconciliation_releases_an_orphan_no_order_knows_and_takes_a_phantom_out_of_its_pool(tmp_path):
    pool = factories.RingPoolFactory(area_code="805")
    factories.InventoryNumberFactory.create_batch(3)
    kept = pool_number_add(
        pool=pool, trigger=Trigger.MANUAL, reason="bought", carrier=InventoryCarrier()
    ).number
    phantom = pool_number_add(
        pool=pool, trigger=Trigger.MANUAL, reason="bought", carrier=InventoryCarrier()
    ).number
    PromoNumber.objects.filter(pk__in=[kept.pk, phantom.pk]).update(
        acquired_at=timezone.now() - timedelta(hours=1)
    )
    # The carrier lost the phantom; and sold us a number under our name that no record has.
    InventoryNumber.objects.filter(number=phantom.number).update(sold_to=None, friendly_name="")
    orphan = InventoryNumber.objects.filter(sold_to__isnull=True).exclude(number=phantom.number).first()
    InventoryNumber.objects.filter(pk=orphan.pk).update(
        sold_to=pool.account, friendly_name=f"ringpool-{pool.pk}-0123456789abcdef0123"
    )
    # And a number the platform's account holds that RingPool did not buy: not ours to release.
    foreign = factories.InventoryNumberFactory(sold_to=pool.account, friendly_name="main office line")

    output = reconcile(tmp_path)

    assert "released 1 orphans, took 1 phantoms out of their pools, left 1 not bought by RingPool" in output
    phantom.refresh_from_db()
    assert phantom.state == NumberState.RELEASED
    assert InventoryNumber.objects.get(pk=orphan.pk).sold_to is None
    assert InventoryNumber.objects.get(pk=foreign.pk).sold_to == pool.account
    assert set(PromoNumber.objects.filter(state=NumberState.ACTIVE, pool=pool)) == {kept}
    reasons = list(ScalingEvent.objects.filter(kind=EventKind.RECONCILED).values_list("reason", flat=True))
    assert any("in no pool" in r for r in reasons) and any("no longer holds" in r for r in reasons)


# --- A worker killed mid-task, and two Beats -------------------------------------------------------


def celery(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killed whole, children included
    )


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    out, _ = process.communicate(timeout=30)
    return out or ""


@pytest.mark.redis
def test_a_worker_killed_mid_purchase_has_its_task_done_by_another_within_a_minute(tmp_path, moment):
    from scaling.tasks import carrier_orders_queue

    (pool,) = due_pools(1, at=moment)
    env = process_env(
        tmp_path, "purchase:STALL", CELERY_VISIBILITY_TIMEOUT_SECONDS="8", RINGPOOL_CARRIER_CLAIM_SECONDS="5"
    )
    worker_args = (
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--queues",
        "celery,carrier",
        "--without-mingle",
        "--without-gossip",
    )
    first = celery(env, *worker_args, "--hostname", "first@%h")
    second = None
    try:
        ringpools_grow(now=moment, dispatch=carrier_orders_queue)  # Beat's pass: decide and queue
        deadline = time.monotonic() + 60
        while not (tmp_path / "fault-met").exists():
            assert time.monotonic() < deadline, stop(first)
            time.sleep(0.1)
        stop(first, signal.SIGKILL)  # the main process and its children, mid-task
        assert CarrierOrder.objects.get(pool=pool).state == OrderState.PENDING
        killed_at = time.monotonic()
        second = celery(env, *worker_args, "--hostname", "second@%h")
        while rotating(pool) < 2:
            assert time.monotonic() < killed_at + 60, stop(second)
            time.sleep(0.2)
    finally:
        for process in (first, second):
            if process is not None:
                stop(process)
    assert added_by_growth(pool) == 1
    assert_books_balance()


@pytest.mark.redis
def test_a_second_beat_stands_by_and_takes_over_when_the_active_one_dies(tmp_path):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    call_command("register_schedules", stdout=StringIO())
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="fault suite: every second", task="scaling.tasks.reconcile_carrier_orders", interval=every_second
    )
    env = process_env(tmp_path, RINGPOOL_BEAT_LEASE_SECONDS="3")
    beats = {
        name: celery(env, "beat", "--loglevel", "INFO", "-s", str(tmp_path / name)) for name in ("a", "b")
    }
    try:
        deadline = time.monotonic() + 40
        while BeatProcess.objects.count() < 2 or not BeatLease.objects.exists():
            assert time.monotonic() < deadline, {n: stop(p) for n, p in beats.items()}
            time.sleep(0.2)
        time.sleep(6)  # several ticks of both
        leader = BeatLease.objects.get().holder
        assert (
            BeatProcess.objects.filter(leading_since__isnull=False).values_list("holder", flat=True).get()
            == leader
        )
        active_pid = int(leader.split(":")[1])
        (active_name,) = [name for name, p in beats.items() if p.pid == active_pid]
        standby_name = "b" if active_name == "a" else "a"
        active_log = stop(beats[active_name], signal.SIGKILL)
        assert "Sending due task fault suite: every second" in active_log  # the active Beat sends
        deadline = time.monotonic() + 30
        while BeatLease.objects.get().holder == leader:
            assert time.monotonic() < deadline, stop(beats[standby_name])
            time.sleep(0.2)
        standby = BeatLease.objects.get().holder
        assert int(standby.split(":")[1]) == beats[standby_name].pid
        while BeatProcess.objects.get(holder=standby).leading_since is None:
            assert time.monotonic() < deadline, stop(beats[standby_name])
            time.sleep(0.2)
        time.sleep(3)  # a few of its ticks as the active Beat
    finally:
        logs = {name: stop(process) for name, process in beats.items()}
    before, took_over, after = logs[standby_name].partition("is now the active Beat")
    assert took_over and "stands by" in before
    assert "Sending due task" not in before  # while it stood by, it sent nothing
    assert "Sending due task fault suite: every second" in after  # once active, it sends
