"""`/readyz` (issue 20): 503 with the part that failed when the broker or Beat's heartbeat is not
healthy; 200 when the database, the broker and a leading Beat all answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from scaling.models import BeatProcess

pytestmark = pytest.mark.django_db


def beat(seen_ago: timedelta, *, leading: bool = True) -> None:
    now = timezone.now()
    BeatProcess.objects.create(
        holder=f"host:{seen_ago.seconds}:x",
        started_at=now - timedelta(hours=1),
        seen_at=now - seen_ago,
        leading_since=now - timedelta(hours=1) if leading else None,
    )


def test_ready_when_the_database_the_broker_and_a_leading_beat_answer():
    beat(timedelta(seconds=5))
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "beat": "ok"}}
    assert response["Cache-Control"] == "no-store"
    assert Client().head("/readyz").status_code == 200


def test_not_ready_without_a_leading_beat_seen_recently():
    beat(timedelta(seconds=5), leading=False)  # one standing by does not send the tasks
    beat(timedelta(seconds=121))  # the leader went silent
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["beat"] and response.json()["checks"]["broker"] == "ok"
    with override_settings(RINGPOOL_ALERT_BEAT_SILENT_SECONDS=300):
        assert Client().get("/readyz").status_code == 200


def test_not_ready_when_the_broker_refuses_connections():
    beat(timedelta(seconds=5))
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:9/0"):  # nothing listens on port 9
        response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"] and body["checks"]["broker"].startswith("failed: ")
    assert "127.0.0.1" not in response.content.decode()  # no address leaks out


def test_only_get_and_head():
    response = Client().post("/readyz")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
