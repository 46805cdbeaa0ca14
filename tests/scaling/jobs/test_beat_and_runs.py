"""One Beat at a time, and each periodic task's last run: the records the admin shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from config.celery import app
from scaling.jobs.leader import beat_lead, beat_step_down
from scaling.models import BeatLease, BeatProcess, JobRun
from tests import factories

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_first_beat_leads_a_second_stands_by_and_takes_over_only_when_the_lease_lapses():
    assert beat_lead("a", started_at=T0, now=at(0)) is True
    assert beat_lead("b", started_at=T0, now=at(1)) is False
    for second in range(5, 60, 5):  # a renews at every tick: b stands by all along
        assert beat_lead("a", started_at=T0, now=at(second)) is True
        assert beat_lead("b", started_at=T0, now=at(second + 1)) is False
    # a stops at 55 s; its lease runs to 85 s: b waits for exactly that.
    assert beat_lead("b", started_at=T0, now=at(85)) is False
    assert beat_lead("b", started_at=T0, now=at(85.001)) is True
    assert BeatLease.objects.get().holder == "b"
    assert beat_lead("a", started_at=T0, now=at(86)) is False  # a woke up: it stands by now
    leading = BeatProcess.objects.filter(leading_since__isnull=False)
    assert list(leading.values_list("holder", flat=True)) == ["b"]


def test_a_beat_stopping_cleanly_hands_over_at_the_next_tick():
    beat_lead("a", started_at=T0, now=at(0))
    beat_lead("b", started_at=T0, now=at(1))
    beat_step_down("a")
    assert beat_lead("b", started_at=T0, now=at(2)) is True


def test_admin_shows_the_active_beat_the_standby_and_warns_of_two(client):
    from django.utils import timezone

    now = timezone.now()
    beat_lead("host-a:101:aaaaaa", started_at=now, now=now)
    beat_lead("host-b:202:bbbbbb", started_at=now, now=now)
    client.force_login(factories.StaffFactory())
    page = client.get(reverse("admin:scaling_beatprocess_changelist")).content.decode()
    assert "active: sends the periodic tasks" in page and "standing by" in page
    assert "2 Beats are running" in page


def test_each_periodic_task_run_is_recorded_with_its_outcome_and_shown_in_admin(client):
    from ringpools.tasks import compact_hourly_figures

    app.conf.task_always_eager = True
    try:
        compact_hourly_figures.delay()
        compact_hourly_figures.delay()
    finally:
        app.conf.task_always_eager = False
    run = JobRun.objects.get(task="ringpools.tasks.compact_hourly_figures")
    assert run.runs == 2 and run.failures == 0 and run.last_outcome == "ok"
    assert run.last_succeeded_at is not None and run.last_duration_ms is not None
    client.force_login(factories.StaffFactory())
    page = client.get(reverse("admin:scaling_jobrun_changelist")).content.decode()
    assert "ringpools.tasks.compact_hourly_figures" in page
