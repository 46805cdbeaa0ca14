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
        description="Hands pending carrier orders (back-off over, worker died) to the carrier workers.",
    ),
    Schedule(
        name="Reconcile carrier numbers",
        task="scaling.tasks.reconcile_carrier_numbers",
        crontab={"minute": "23", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        description="Compares the carrier's list of our numbers with ours; releases orphans, drops phantoms.",
    ),
    Schedule(
        name="Purge old leases",
        task="ringpools.tasks.purge_old_leases",
        crontab={"minute": "37", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        description="Deletes leases past RINGPOOL_LEASE_RETENTION_DAYS, in small batches.",
    ),
    Schedule(
        name="Grow RingPools",
        task="scaling.tasks.grow_ringpools",
        crontab={"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        description="Adds numbers to pools that overflowed, at the account's pace (SPEC §6).",
    ),
    Schedule(
        # Celery's crontab has no "last day of the month", and accounts live in every time zone: the
        # last local day of a month falls, in UTC, between day 27 (UTC+14) and day 1 (UTC-12). Hourly
        # on those days; the task acts where it is the account's last local day, once per pool and
        # month. `hour` stays "*": django-celery-beat skips numeric hours outside a window around now.
        name="Prune RingPools at month end",
        task="scaling.tasks.prune_ringpools",
        crontab={
            "minute": "15",
            "hour": "*",
            "day_of_week": "*",
            "day_of_month": "1,27-31",
            "month_of_year": "*",
        },
        description="Removes unused numbers on the last day of each month in each account's time zone.",
    ),
    Schedule(
        name="Release surplus at renewals",
        task="scaling.tasks.release_at_renewal",
        # Off the prune's minute 15: the two share a lock, and the prune must not find it taken.
        crontab={
            "minute": "2-59/5",
            "hour": "*",
            "day_of_week": "*",
            "day_of_month": "*",
            "month_of_year": "*",
        },
        description="The adaptive policy: releases a number just before its monthly renewal when the pool "
        "keeps enough without it and nobody is still using it.",
    ),
    Schedule(
        name="Check alerts",
        task="scaling.tasks.check_alerts",
        crontab={"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        description="Opens, keeps and resolves alerts (pools at their cap, carrier trouble, late jobs) and "
        "mails them once.",
    ),
    Schedule(
        name="Send the daily alert digest",
        task="scaling.tasks.send_alert_digests",
        # Hourly ("hour" stays "*", as above); the task sends at RINGPOOL_ALERT_DIGEST_HOUR_UTC only.
        crontab={"minute": "3", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        description="At RINGPOOL_ALERT_DIGEST_HOUR_UTC, to those who asked for it: the alerts open and "
        "those resolved in the last day.",
    ),
)
