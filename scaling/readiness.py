"""`/readyz`: whether this deployment can do its job now — the database answers, the broker accepts a
connection, and a Beat leads (seen within RINGPOOL_ALERT_BEAT_SILENT_SECONDS). 200 when all three
hold; 503 with the parts that failed otherwise (JSON; exception names only, never their text, which
may carry an address or a password). `/healthz` stays the cheap liveness check (the database only).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from ringpools.api import error_response
from scaling.alerts.conditions import beat_alive

BROKER_TIMEOUT_SECONDS = 2


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _broker() -> str:
    from config.celery import app

    # The broker of the settings (the same URL and transport options the workers use).
    with app.connection_for_write(settings.CELERY_BROKER_URL) as broker:
        broker.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS
        )
    return "ok"


def _beat() -> str:
    return "ok" if beat_alive(timezone.now()) else "no Beat leads: none seen recently"


CHECKS: dict[str, Callable[[], str]] = {"database": _database, "broker": _broker, "beat": _beat}


def readiness() -> dict[str, str]:
    """Each part's state: "ok", or why not."""
    states = {}
    for name, check in CHECKS.items():
        try:
            states[name] = check()
        except Exception as error:  # any failure of a part means "not ready", never a 500
            states[name] = f"failed: {type(error).__name__}"
        if name == "database" and states[name] != "ok":
            states["beat"] = "unknown: the database does not answer"
            break
    return states


@csrf_exempt
def readyz(request: HttpRequest) -> JsonResponse:
    if request.method not in ("GET", "HEAD"):
        response = error_response(405, "method_not_allowed", "Use GET or HEAD.")
        response["Allow"] = "GET, HEAD"
        return response
    states = readiness()
    failed = [name for name, state in states.items() if state != "ok"]
    body: dict[str, object] = {"status": "unavailable" if failed else "ok", "checks": states}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200, headers={"Cache-Control": "no-store"})
