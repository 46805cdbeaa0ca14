"""Differential runs of twin implementations (one for PostgreSQL, one portable): the same story run
by each in a transaction rolled back afterwards, so both start from the same rows and ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from hypothesis import HealthCheck, settings

T = TypeVar("T")

# Stories are drawn afresh each run (no example database in the work tree); a failure prints the
# story that broke and the seed to replay it (@seed).
TWIN_STORIES = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


def rolled_back(run: Callable[[], T]) -> T:
    """What `run` answers, with everything it wrote undone (a savepoint inside the test's transaction)."""
    with transaction.atomic():
        result = run()
        transaction.set_rollback(True)
    return result


def numbered(ids: list[int]) -> dict[int, int]:
    """Ids made during a run (leases, orders, events) by order of creation: 0, 1, 2, ... The twins'
    runs make them from the same sequences one after the other, so only their order can match."""
    return {pk: position for position, pk in enumerate(sorted(ids))}
