"""Logs people can use (issue 20): an outage cannot flood the disk, and each line says which request
and pool it belongs to (plain, or one JSON object per line)."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import Client, override_settings

from ringpools import handout
from tests.factories import PromoNumberFactory, RingPoolFactory

pytestmark = pytest.mark.django_db
ORIGIN = "https://www.example.com"


@pytest.fixture
def console():
    """The product's logging configuration as deployed, writing into a buffer."""

    def configure(log_format: str = "plain") -> io.StringIO:
        with override_settings(LOG_FORMAT=log_format):
            config = json.loads(json.dumps(settings.LOGGING))
            config["handlers"]["console"]["formatter"] = log_format
            logging.config.dictConfig(config)
        stream = io.StringIO()
        logging.getLogger().handlers[0].setStream(stream)
        return stream

    yield configure
    logging.config.dictConfig(settings.LOGGING)


def database_down(monkeypatch):
    def fail(**kwargs):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed")

    monkeypatch.setattr(handout, "present_number", fail)
    monkeypatch.setattr("ringpools.views.present_number", fail)


def test_a_database_outage_writes_one_line_per_minute_not_one_per_request(console, monkeypatch):
    pool = RingPoolFactory(allowed_origins=[ORIGIN])
    PromoNumberFactory(pool=pool)
    stream = console()
    database_down(monkeypatch)
    client = Client()
    for visitor in range(500):
        response = client.post(
            f"/api/v1/ringpools/{pool.key}/numbers",
            data={"visitor_id": f"visitor-{visitor:04d}"},
            content_type="application/json",
            HTTP_ORIGIN=ORIGIN,
        )
        assert response.status_code == 503
    lines = [
        line for line in stream.getvalue().splitlines() if line and not line.startswith((" ", "Traceback"))
    ]
    failures = [line for line in lines if "failed on the database" in line]
    assert len(failures) == 1, lines[:5]
    assert len(stream.getvalue().splitlines()) < 60  # one traceback, not 500

    # After the window, the next one says how many were left out.
    with override_settings(LOG_REPEAT_SECONDS=0):
        client.post(
            f"/api/v1/ringpools/{pool.key}/numbers",
            data={"visitor_id": "visitor-late"},
            content_type="application/json",
            HTTP_ORIGIN=ORIGIN,
        )
    assert "[499 identical left out in the 0 s before]" in stream.getvalue()


def test_json_lines_carry_the_request_id_the_pool_key_and_the_outcome(console, monkeypatch):
    pool = RingPoolFactory(allowed_origins=[ORIGIN])
    stream = console("json")
    database_down(monkeypatch)
    response = Client().post(
        f"/api/v1/ringpools/{pool.key}/numbers",
        data={"visitor_id": "visitor-0001"},
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
        HTTP_X_REQUEST_ID="req-0123456789abcdef",
    )
    assert response["X-Request-ID"] == "req-0123456789abcdef"
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    failure = next(r for r in records if "failed on the database" in r["message"])
    assert failure["request_id"] == "req-0123456789abcdef"
    assert failure["pool_key"] == pool.key and failure["outcome"] == "503 unavailable"
    assert failure["level"] == "ERROR" and "exc_info" in failure


def test_a_request_id_that_is_not_a_sane_token_is_replaced():
    response = Client().get("/livez", HTTP_X_REQUEST_ID="<script>alert(1)</script>")
    assert response["X-Request-ID"] != "<script>alert(1)</script>" and len(response["X-Request-ID"]) == 32
