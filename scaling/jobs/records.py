"""Each periodic task's last run, recorded by the worker that ran it (Celery's task signals).

One row per task, updated in place: when it last started, finished and succeeded, how long it took,
what it returned or why it failed. The admin shows it; alerts (a task not run for its interval) and
readiness read it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import signals
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from config import metrics
from config.schedules import SCHEDULES
from scaling.audit import reason_cut
from scaling.models import JobRun

log = logging.getLogger(__name__)

PERIODIC = frozenset(schedule.task for schedule in SCHEDULES)
_started: dict[str, float] = {}


def _record(task: str, **values: Any) -> None:
    try:
        JobRun.objects.update_or_create(task=task, defaults=values, create_defaults={"task": task, **values})
    except DatabaseError:
        log.exception("Could not record the run of %s", task)


@signals.task_prerun.connect
def job_started(sender: Any = None, task_id: str = "", **kwargs: Any) -> None:
    name = getattr(sender, "name", "")
    if name in PERIODIC:
        _started[task_id] = time.monotonic()
        _record(name, last_started_at=timezone.now())


@signals.task_postrun.connect
def job_finished(
    sender: Any = None, task_id: str = "", retval: Any = None, state: str = "", **kwargs: Any
) -> None:
    name = getattr(sender, "name", "")
    if name not in PERIODIC:
        return
    now = timezone.now()
    took = _started.pop(task_id, None)
    duration = round((time.monotonic() - took) * 1000) if took is not None else None
    values: dict[str, Any] = {"last_finished_at": now, "last_duration_ms": duration}
    if took is not None:
        outcome = "ok" if state == "SUCCESS" else "failed"
        metrics.JOB_SECONDS.labels(name, outcome).observe(time.monotonic() - took)
    if state == "SUCCESS":
        values.update(last_outcome="ok", last_succeeded_at=now, last_error="", last_result=str(retval)[:100])
        counted = {"runs": F("runs") + 1}
    else:
        values.update(last_outcome="failed", last_error=reason_cut(str(retval)))
        counted = {"runs": F("runs") + 1, "failures": F("failures") + 1}
    try:
        if not JobRun.objects.filter(task=name).update(**values, **counted):
            _record(name, **values, runs=1, failures=int(state != "SUCCESS"))
    except DatabaseError:
        log.exception("Could not record the run of %s", name)
