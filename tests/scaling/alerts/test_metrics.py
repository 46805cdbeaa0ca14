"""/metrics (issue 20): the Prometheus text format behind a token; counters of every process summed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from scaling.choices import OrderKind, OrderState, Trigger
from scaling.models import CarrierOrder
from tests import factories

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]
TOKEN = "metrics-token-for-tests"


def scrape() -> str:
    with override_settings(RINGPOOL_METRICS_TOKEN=TOKEN):
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


def test_without_a_token_there_is_no_endpoint_and_a_wrong_token_is_refused():
    assert Client().get("/metrics").status_code == 404
    with override_settings(RINGPOOL_METRICS_TOKEN=TOKEN):
        assert Client().get("/metrics").status_code == 401
        refused = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer guess")
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"


COUNT = """
import os, sys
sys.path.insert(0, os.getcwd())
import django
django.setup()
from config import metrics
for _ in range(int(sys.argv[1])):
    metrics.HANDOUTS.labels("promo").inc()
metrics.RATE_LIMITED.inc(int(sys.argv[1]))
"""


def test_the_counters_of_two_processes_add_up_in_one_scrape():
    sample = 'ringpool_handouts_total{kind="promo"}'
    before = scrape()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "RINGPOOL_METRICS_DIR": settings.RINGPOOL_METRICS_DIR,
    }
    env["PROMETHEUS_MULTIPROC_DIR"] = settings.RINGPOOL_METRICS_DIR
    workers = [subprocess.Popen([sys.executable, "-c", COUNT, str(n)], cwd=ROOT, env=env) for n in (3, 4)]
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    after = scrape()
    assert value(after, sample) - value(before, sample) == 7
    assert (
        value(after, "ringpool_rate_limit_refusals_total")
        - value(before, "ringpool_rate_limit_refusals_total")
        == 7
    )


def test_a_real_hand_out_is_counted_with_its_latency_and_the_outbox_and_alerts_are_read_at_the_scrape(client):
    pool = factories.RingPoolFactory()
    factories.PromoNumberFactory(pool=pool)
    before = scrape()
    kinds = []
    for visitor in ("visitor-0001", "visitor-0002"):  # the pool's one number, then what is left
        response = client.post(
            f"/api/v1/ringpools/{pool.key}/numbers",
            data={"visitor_id": visitor},
            content_type="application/json",
            HTTP_ORIGIN="https://www.example.com",
        )
        assert response.status_code == 200
        kinds.append(response.json()["kind"])
    CarrierOrder.objects.create(
        kind=OrderKind.PURCHASE,
        state=OrderState.PENDING,
        account=pool.account,
        pool=pool,
        request_id="ringpool-1-00000000000000000001",
        trigger=Trigger.GROWTH,
        created_at=timezone.now(),
    )
    after = scrape()
    assert kinds[0] == "promo" and kinds[1] != "promo"
    for kind in kinds:
        sample = f'ringpool_handouts_total{{kind="{kind}"}}'
        assert value(after, sample) - value(before, sample) == 1, kind
    assert (
        value(after, "ringpool_handout_seconds_count") - value(before, "ringpool_handout_seconds_count") == 2
    )
    assert value(after, 'ringpool_outbox_pending{kind="purchase"}') == 1
    assert "ringpool_outbox_oldest_age_seconds" in after and "ringpool_alerts_open" in after
