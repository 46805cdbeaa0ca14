"""Hourly per-pool counts (presentations, overflows, calls) and the overflow facts growth reads.

The hand-out does not write these per request: during a rush every visitor of a pool overflows at
once, and one write per request (an upsert, the pool's `last_overflow_at`) queues them all on the same
rows. Each web process adds its counts up in memory and writes them every
RINGPOOL_FIGURES_FLUSH_SECONDS (a background thread, and once more at a clean exit), so the hourly
figures stay exact and `last_overflow_at` / the overflow number's `last_presented_at` are at most that
late. With the setting at 0 they are written within the request (tests, scripts).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum

from ringpools.models import PoolHourlyFigures, PromoNumber, RingPool

log = logging.getLogger(__name__)

_TABLE = PoolHourlyFigures._meta.db_table
_POOLS = RingPool._meta.db_table
_NUMBERS = PromoNumber._meta.db_table

UPSERT_SQL = f"""
INSERT INTO {_TABLE} (pool_id, hour, shard, presentations, overflows, calls, turned_away)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (pool_id, hour, shard) DO UPDATE SET
    presentations = {_TABLE}.presentations + excluded.presentations,
    overflows = {_TABLE}.overflows + excluded.overflows,
    calls = {_TABLE}.calls + excluded.calls,
    turned_away = {_TABLE}.turned_away + excluded.turned_away
"""
# Moves a timestamp forward only: two processes flushing out of order never move it back.
_LAST_OVERFLOW_SQL = f"""
UPDATE {_POOLS} SET last_overflow_at = %s
WHERE id = %s AND (last_overflow_at IS NULL OR last_overflow_at < %s)
"""
_LAST_PRESENTED_SQL = f"""
UPDATE {_NUMBERS} SET last_presented_at = %s
WHERE id = %s AND (last_presented_at IS NULL OR last_presented_at < %s)
"""


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def figures_window(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The hours of "the last `days` days" at `now`: the current hour and the whole hours before it,
    `days` x 24 in all, as [start, end). Every page counting figures over a window reads it here, so
    the same window gives the same count everywhere."""
    end = hour_of(now.astimezone(UTC)) + timedelta(hours=1)
    return end - timedelta(days=days), end


def shard() -> int:
    # Concurrent writers in different processes (or threads) write different rows: no lock queue.
    return threading.get_native_id() % PoolHourlyFigures.SHARDS


def figures_key(moment: datetime) -> tuple[Any, int]:
    """The (hour, shard) row a count made now goes to, ready to pass to SQL."""
    return connection.ops.adapt_datetimefield_value(hour_of(moment)), shard()


def figures_add(
    pool_id: int, moment: datetime, *, presentations: int = 0, overflows: int = 0, calls: int = 0
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(UPSERT_SQL, [pool_id, *figures_key(moment), presentations, overflows, calls, 0])


@dataclass
class _Pending:
    # (pool, hour) -> [presentations, overflows, visitors turned away (an overflow not on a keep-alive)]
    counts: dict[tuple[int, datetime], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0])
    )
    last_overflow: dict[int, datetime] = field(default_factory=dict)
    last_presented: dict[int, datetime] = field(default_factory=dict)

    def merge(self, other: _Pending) -> None:
        for key, (presented, overflowed, turned_away) in other.counts.items():
            self.counts[key][0] += presented
            self.counts[key][1] += overflowed
            self.counts[key][2] += turned_away
        for mine, theirs in (
            (self.last_overflow, other.last_overflow),
            (self.last_presented, other.last_presented),
        ):
            for number_id, moment in theirs.items():
                mine[number_id] = max(moment, mine.get(number_id, moment))

    def __bool__(self) -> bool:
        return bool(self.counts or self.last_overflow or self.last_presented)


class HandoutFigures:
    """This process's counts not yet written. Thread-safe; one per process (`handout_figures`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = _Pending()
        self._flusher: threading.Thread | None = None
        self._flusher_pid = 0
        self._stop = threading.Event()

    def presented(self, pool_id: int, moment: datetime) -> None:
        with self._lock:
            self._pending.counts[(pool_id, hour_of(moment))][0] += 1
        self._written_soon()

    def number_presented(self, number_id: int | None, moment: datetime) -> None:
        """A number shown without a write of its row (a renewal a moment after the last one)."""
        if number_id is None:
            return
        with self._lock:
            presented = self._pending.last_presented
            presented[number_id] = max(moment, presented.get(number_id, moment))
        self._written_soon()

    def overflowed(
        self, pool_id: int, moment: datetime, *, overflow_number_id: int | None, turned_away: bool = True
    ) -> None:
        """An overflow shown; `turned_away` unless it was a keep-alive of a visitor already waiting."""
        with self._lock:
            pending = self._pending
            counts = pending.counts[(pool_id, hour_of(moment))]
            counts[0] += 1
            counts[1] += 1
            counts[2] += turned_away
            pending.last_overflow[pool_id] = max(moment, pending.last_overflow.get(pool_id, moment))
            if overflow_number_id is not None:
                pending.last_presented[overflow_number_id] = max(
                    moment, pending.last_presented.get(overflow_number_id, moment)
                )
        self._written_soon()

    def flush(self) -> None:
        """Write what this process counted. On a database error the counts wait for the next flush."""
        with self._lock:
            taken, self._pending = self._pending, _Pending()
        if not taken:
            return
        try:
            _write(taken)
        except DatabaseError:
            log.warning("hand-out figures not written yet; retrying at the next flush", exc_info=True)
            with self._lock:
                taken.merge(self._pending)
                self._pending = taken
            raise

    def _written_soon(self) -> None:
        every = settings.RINGPOOL_FIGURES_FLUSH_SECONDS
        if every <= 0:
            self.flush()
            return
        # A forked worker (gunicorn) does not inherit the parent's thread: start one per process.
        if self._flusher_pid != os.getpid():
            with self._lock:
                if self._flusher_pid != os.getpid():
                    self._flusher_pid = os.getpid()
                    self._flusher = threading.Thread(
                        target=self._flush_forever, args=(self._stop,), name="ringpool-figures", daemon=True
                    )
                    self._flusher.start()

    def _flush_forever(self, stop: threading.Event) -> None:
        while True:
            every = settings.RINGPOOL_FIGURES_FLUSH_SECONDS
            # Stopped, or switched to writing within requests: flush once more and end.
            done = every <= 0 or stop.wait(every) or settings.RINGPOOL_FIGURES_FLUSH_SECONDS <= 0
            try:
                self.flush()
            except DatabaseError:
                connection.close()  # this thread's own connection; a fresh one next time
            except Exception:  # the flusher must outlive any surprise, or counts pile up unwritten
                log.exception("hand-out figures flush failed")
            if done:
                connection.close()
                with self._lock:
                    if self._flusher is threading.current_thread():
                        self._flusher, self._flusher_pid = None, 0
                return

    def stop(self) -> None:
        """End this process's flusher thread after a last flush (tests; a process about to exit)."""
        with self._lock:
            flusher, self._flusher, self._flusher_pid = self._flusher, None, 0
            self._stop.set()
            self._stop = threading.Event()
        if flusher is not None and flusher.is_alive():
            flusher.join(timeout=10)


def _write(pending: _Pending) -> None:
    # Sorted, so two processes flushing at once take row locks in the same order (no deadlock).
    with transaction.atomic(), connection.cursor() as cursor:
        # A pool deleted since its counts were taken has nowhere to keep them: drop those, or the
        # foreign key would refuse the whole flush, every flush, and no other pool's figures would be
        # written again. The pools kept are key-share locked until the commit (not on SQLite, which
        # runs one writer at a time).
        pool_ids = {pool_id for pool_id, _ in pending.counts}
        existing = (
            set(
                RingPool.objects.filter(pk__in=pool_ids)
                .select_for_update(no_key=True)
                .values_list("pk", flat=True)
                .order_by("pk")
            )
            if pool_ids
            else set()
        )
        rows: list[list[Any]] = [
            [pool_id, *figures_key(hour), presented, overflowed, 0, turned_away]
            for (pool_id, hour), (presented, overflowed, turned_away) in sorted(pending.counts.items())
            if pool_id in existing
        ]
        if rows:
            cursor.executemany(UPSERT_SQL, rows)
        adapt = connection.ops.adapt_datetimefield_value
        for sql, facts in (
            (_LAST_OVERFLOW_SQL, pending.last_overflow),
            (_LAST_PRESENTED_SQL, pending.last_presented),
        ):
            if facts:
                cursor.executemany(sql, [[adapt(m), key, adapt(m)] for key, m in sorted(facts.items())])


handout_figures = HandoutFigures()


@atexit.register
def _flush_at_exit() -> None:
    try:
        handout_figures.flush()
    except Exception:
        log.exception("hand-out figures lost at exit")


def figures_compact(*, before: datetime) -> int:
    """Fold the shard rows of every hour before `before` into shard 0. Returns the rows removed.

    Hours that are over get no more writes, so summing and deleting their shards loses nothing.
    """
    hour = hour_of(before)
    spread = (
        PoolHourlyFigures.objects.filter(hour__lt=hour, shard__gt=0)
        .values("pool_id", "hour")
        .annotate(p=Sum("presentations"), o=Sum("overflows"), c=Sum("calls"), t=Sum("turned_away"))
        .order_by()
    )
    removed = 0
    with transaction.atomic():
        for group in spread:
            with connection.cursor() as cursor:
                cursor.execute(
                    UPSERT_SQL,
                    [
                        group["pool_id"],
                        connection.ops.adapt_datetimefield_value(group["hour"]),
                        0,
                        group["p"],
                        group["o"],
                        group["c"],
                        group["t"],
                    ],
                )
            removed += PoolHourlyFigures.objects.filter(
                pool_id=group["pool_id"], hour=group["hour"], shard__gt=0
            ).delete()[0]
    return removed
