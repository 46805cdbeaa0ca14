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
