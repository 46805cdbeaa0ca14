"""Other claims in flight, for tests: numbers row-locked by another transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, transaction

from ringpools.models import PromoNumber, RingPool


@contextmanager
def numbers_locked(
    pool: RingPool, *, pks: list[int] | None = None, for_seconds: float | None = None
) -> Iterator[None]:
    """Inside the block, `pool`'s numbers (or those of `pks`) are locked by another connection's
    transaction; it ends after `for_seconds`, or when the block does."""
    release, locked = threading.Event(), threading.Event()

    def hold() -> None:
        numbers = PromoNumber.objects.filter(pool=pool)
        if pks is not None:
            numbers = numbers.filter(pk__in=pks)
        try:
            with transaction.atomic():
                list(numbers.select_for_update())
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10), "the numbers could not be locked"
        if for_seconds is not None:
            threading.Timer(for_seconds, release.set).start()
        yield
    finally:
        release.set()
        holder.join()
