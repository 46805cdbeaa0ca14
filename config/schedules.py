"""The product's periodic tasks, registered in django-celery-beat by `manage.py register_schedules`.

The code owns which task an entry runs; staff own its timing and whether it is enabled, in admin.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    crontab: dict[str, str]
    description: str


SCHEDULES: tuple[Schedule, ...] = (
    Schedule(
        name="Compact hourly pool figures",
        task="ringpools.tasks.compact_hourly_figures",
        crontab={"minute": "7", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        description="Folds the shard rows of finished hours into one row per pool and hour.",
    ),
    Schedule(
        name="Reconcile carrier orders",
        task="scaling.tasks.reconcile_carrier_orders",
        crontab={"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        description="Finishes carrier purchases and releases whose answer was lost (time-out, crash).",
    ),
    Schedule(
        name="Grow RingPools",
        task="scaling.tasks.grow_ringpools",
        crontab={"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        description="Adds numbers to pools that overflowed, at the account's pace (SPEC §6).",
    ),
)
