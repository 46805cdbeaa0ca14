"""Beat's scheduler: django-celery-beat's DatabaseScheduler, sending only while it holds the lease.

`CELERY_BEAT_SCHEDULER = "scaling.jobs.beat:LeaderScheduler"`. Every tick (at most STANDBY_POLL apart)
renews the lease or, standing by, checks whether it lapsed. A Beat that takes over reloads the
schedule from the database first, so it starts from the last runs the active one recorded.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from typing import Any

from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler

from scaling.jobs.leader import beat_lead, beat_step_down, beats_forget

log = logging.getLogger(__name__)

STANDBY_POLL = 5.0  # seconds between ticks, leading or not (the lease lasts 30 s)


class LeaderScheduler(DatabaseScheduler):
    # Each send's last-run time reaches the database at once: a Beat taking over (the active one
    # killed) starts from it, instead of sending again what was sent in the last sync interval.
    sync_every_tasks = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.started_at = timezone.now()
        self.leading: bool | None = None  # unknown until the first tick
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        close_old_connections()
        try:
            leading = beat_lead(self.holder, started_at=self.started_at, now=timezone.now())
        except DatabaseError:
            log.exception("Beat %s could not reach its lease; standing by", self.holder)
            leading = False
        if leading != self.leading:
            if leading:
                log.warning("Beat %s is now the active Beat", self.holder)
                beats_forget(now=timezone.now())
                # Start from the database's last runs, not the ones read when this Beat started.
                self._initial_read = False
                self._last_full_sync = dt.datetime.now() - dt.timedelta(days=1)
            else:
                log.warning(
                    "Beat %s stands by: another Beat is active (see admin, Beat processes)", self.holder
                )
            self.leading = leading
        if not leading:
            return STANDBY_POLL
        return min(float(super().tick(*args, **kwargs)), STANDBY_POLL)

    def sync(self) -> None:
        if not self.leading:
            # A Beat that lost the lease (frozen past it) must not write its stale last runs over
            # the active one's.
            self._dirty.clear()
            return
        super().sync()

    def close(self) -> None:
        self.sync()  # the last runs saved before the lease is given up
        try:
            if self.leading:
                beat_step_down(self.holder)
                self.leading = False
        except DatabaseError:
            log.exception("Beat %s could not give its lease up", self.holder)
        super().close()
