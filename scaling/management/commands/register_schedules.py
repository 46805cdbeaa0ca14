from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from config.schedules import SCHEDULES


class Command(BaseCommand):
    help = (
        "Register the product's periodic tasks in django-celery-beat. Idempotent: an existing entry keeps "
        "the timing and the enabled flag staff gave it in admin; only the task it runs is brought up to date."
    )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        for schedule in SCHEDULES:
            crontab, _ = CrontabSchedule.objects.get_or_create(**schedule.crontab, timezone="UTC")
            entry, created = PeriodicTask.objects.get_or_create(
                name=schedule.name,
                defaults={"task": schedule.task, "crontab": crontab, "description": schedule.description},
            )
            if created:
                self.stdout.write(f"registered  {schedule.name}  ({schedule.task})")
            elif entry.task != schedule.task:
                entry.task = schedule.task
                entry.save(update_fields=["task"])
                self.stdout.write(f"updated     {schedule.name}  ({schedule.task})")
            else:
                self.stdout.write(f"unchanged   {schedule.name}")
        PeriodicTasks.update_changed()
