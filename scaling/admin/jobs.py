"""The periodic jobs in admin: which Beat is active, which stand by, and each task's last run."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.timesince import timesince

from ringpools.admin_tools import ReadOnlyFactsAdmin
from scaling.jobs.leader import lease
from scaling.models import BeatProcess, JobRun


def _ago(moment: Any) -> str:
    return f"{timesince(moment, timezone.now())} ago" if moment else "never"


@admin.register(BeatProcess)
class BeatProcessAdmin(ReadOnlyFactsAdmin):
    list_display = ("holder", "role", "leading", "started_at", "last_seen")
    ordering = ("-seen_at",)

    @admin.display(description="role")
    def role(self, beat: BeatProcess) -> str:
        if beat.seen_at < timezone.now() - lease():
            return "stopped"
        return "active: sends the periodic tasks" if beat.leading_since else "standing by"

    @admin.display(description="active since")
    def leading(self, beat: BeatProcess) -> str:
        return f"{beat.leading_since:%Y-%m-%d %H:%M:%S} UTC" if beat.leading_since else "—"

    @admin.display(ordering="seen_at", description="last seen")
    def last_seen(self, beat: BeatProcess) -> str:
        return _ago(beat.seen_at)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        alive = BeatProcess.objects.filter(seen_at__gte=timezone.now() - lease())
        if alive.count() > 1:
            messages.warning(
                request,
                f"{alive.count()} Beats are running. One sends the periodic tasks, the others stand by: "
                "stop the extra ones (one Beat per deployment).",
            )
        elif not alive.exists():
            messages.error(request, "No Beat is running: no periodic task is being sent.")
        return super().changelist_view(request, extra_context)


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyFactsAdmin):
    list_display = (
        "task",
        "last_outcome",
        "succeeded",
        "last_started_at",
        "last_duration_ms",
        "runs",
        "failures",
    )
    list_filter = ("last_outcome",)
    readonly_fields = [f.name for f in JobRun._meta.fields]

    @admin.display(ordering="last_succeeded_at", description="last succeeded")
    def succeeded(self, run: JobRun) -> str:
        return _ago(run.last_succeeded_at)
