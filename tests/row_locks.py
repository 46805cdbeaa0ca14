"""Another claim in flight, for tests: a pool's numbers row-locked by another transaction."""

from __future__ import annotations

import threading

from django.db import connections, transaction

from ringpools.models import PromoNumber, RingPool


def hold_row_locks(pool: RingPool, release: threading.Event, locked: threading.Event) -> None:
    """Lock every number of `pool` (run it in a thread of its own) until `release` is set."""
    try:
        with transaction.atomic():
            list(PromoNumber.objects.filter(pool=pool).select_for_update())
            locked.set()
            release.wait(10)
    finally:
        connections.close_all()
