"""`/metrics`: the Prometheus text format for operators, behind a token (RINGPOOL_METRICS_TOKEN sent as
`Authorization: Bearer <token>`; without one set, the endpoint does not exist).

The counters of every process (config/metrics.py, summed by prometheus_client's multiprocess
collector), plus what the database knows at the scrape: the carrier outbox's backlog and its oldest
order's age, the open alerts by kind, and each periodic task's last successful run.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ringpools.api import error_response
from scaling.choices import OrderState
from scaling.models import Alert, CarrierOrder, JobRun


class DatabaseFigures(Collector):
    """Gauges read from the database at each scrape (the same in every process: not summed)."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        pending = CarrierOrder.objects.filter(state=OrderState.PENDING)
        backlog = GaugeMetricFamily(
            "ringpool_outbox_pending", "Carrier orders pending, by kind", labels=["kind"]
        )
        for row in pending.values("kind").annotate(n=Count("id")).order_by("kind"):
            backlog.add_metric([row["kind"]], row["n"])
        yield backlog
        oldest = pending.aggregate(oldest=Min("created_at"))["oldest"]
        yield GaugeMetricFamily(
            "ringpool_outbox_oldest_age_seconds",
            "Age of the oldest pending carrier order (0: none pending)",
            value=(now - oldest).total_seconds() if oldest else 0,
        )
        alerts = GaugeMetricFamily("ringpool_alerts_open", "Open alerts, by kind", labels=["kind"])
        open_alerts = Alert.objects.filter(opened_at__isnull=False, resolved_at__isnull=True)
        for row in open_alerts.values("kind").annotate(n=Count("id")).order_by("kind"):
            alerts.add_metric([row["kind"]], row["n"])
        yield alerts
        runs = GaugeMetricFamily(
            "ringpool_job_last_success_timestamp_seconds",
            "When each periodic task last succeeded (Unix time)",
            labels=["task"],
        )
        for run in JobRun.objects.exclude(last_succeeded_at=None).only("task", "last_succeeded_at"):
            if run.last_succeeded_at is not None:
                runs.add_metric([run.task], run.last_succeeded_at.timestamp())
        yield runs


def metrics_text() -> bytes:
    """Every process's counters, summed, and the database's figures, in the text format."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DatabaseFigures())
    return generate_latest(registry)


@csrf_exempt
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.RINGPOOL_METRICS_TOKEN
    if not token:
        return error_response(404, "not_found", "Metrics are off: set RINGPOOL_METRICS_TOKEN.")
    sent = request.headers.get("Authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        response = error_response(401, "unauthorized", "Send Authorization: Bearer <RINGPOOL_METRICS_TOKEN>.")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(
        metrics_text(), content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
    )
