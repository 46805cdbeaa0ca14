"""Advisory-lock keys of the periodic jobs, in one table so no two jobs share one by accident."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum

from django.db import connection, transaction


class JobLock(IntEnum):
    COMPACT_HOURLY_FIGURES = 7_001
    # 7_002 is retired (growth takes each pool by compare-and-swap, no job lock): do not reuse it.
    PRUNE_RINGPOOLS = 7_003
    PURGE_LEASES = 7_004
    CARRIER_NUMBERS_RECONCILE = 7_005
    CHECK_ALERTS = 7_006
    # The carrier's concurrency slots: (7_100, 0 … RINGPOOL_CARRIER_CONCURRENCY - 1).
    CARRIER_SLOTS = 7_100


@contextmanager
def job_lock(key: JobLock) -> Iterator[bool]:
    """A transaction that holds the job's lock, or yields False when another process has it.

    PostgreSQL: `pg_try_advisory_xact_lock`, released on commit, rollback or a crash of the holder.
    SQLite: its IMMEDIATE transactions already let one writer in at a time.
    """
    with transaction.atomic():
        if connection.vendor != "postgresql":
            yield True
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [int(key)])
            yield bool(cursor.fetchone()[0])


@contextmanager
def job_session_lock(key: JobLock) -> Iterator[bool]:
    """The job's lock for a job made of many transactions (the prune commits pool by pool), or False
    when another process has it.

    PostgreSQL: `pg_try_advisory_lock`, held by the connection until the end of the block, or until
    the connection dies with its process. SQLite: no lock (the jobs' own records keep them correct).
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [int(key)])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [int(key)])


@contextmanager
def carrier_slot(slots: int) -> Iterator[bool]:
    """One of `slots` places for a carrier call at once across every process, or False when all are
    taken (the caller waits its turn). PostgreSQL: session advisory locks (7_100, n), freed at the
    end of the block or with a dead process's connection. SQLite (the demo, one worker): always one."""
    if connection.vendor != "postgresql":
        yield True
        return
    held = None
    with connection.cursor() as cursor:
        for slot in range(max(slots, 1)):
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [int(JobLock.CARRIER_SLOTS), slot])
            if cursor.fetchone()[0]:
                held = slot
                break
    try:
        yield held is not None
    finally:
        if held is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [int(JobLock.CARRIER_SLOTS), held])
