"""What the web tier answers when no view does: the endpoint's own format, never Django's HTML error,
one log line and no traceback for a client's mistake (SPEC §3.7, §9)."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from tests.factories import PromoNumberFactory, RingPoolFactory

pytestmark = pytest.mark.django_db
ORIGIN = "https://www.example.com"
BAD_HOSTS = [
    "",
    "@evil.example",
    "[::1",
    "a/b",
    "exa_mple.com",
    "x.example, y.example",
    "evil.example",
    "é.example",
]


@pytest.fixture
def pool():
    pool = RingPoolFactory(allowed_origins=[ORIGIN])
    PromoNumberFactory(pool=pool)
    return pool


def api_post(client: Client, path: str, **extra):
    return client.post(
        path, data=json.dumps({"visitor_id": "visitor-0001"}), content_type="application/json", **extra
    )


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_a_bad_host_gets_each_endpoints_own_400_and_one_log_line(pool, host, caplog):
    caplog.set_level(logging.INFO)
    client = Client(HTTP_HOST=host)
    answers = {
        "api": api_post(client, f"/api/v1/ringpools/{pool.key}/numbers"),
        "webhook": client.post("/webhooks/calls", {"To": "+18055550142"}),
        "health": client.get("/healthz"),
    }
    for name, response in answers.items():
        assert response.status_code == 400, name
        assert response.json()["error"] == "bad_host", name
    tag = client.get(f"/tag/{pool.key}.js")
    assert tag.status_code == 400 and tag["Content-Type"].startswith("text/javascript")
    page = client.get("/settings/")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
    assert "cannot be read" in page.content.decode()
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 5  # one per request
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)


@pytest.mark.parametrize(
    "path",
    [
        "/api//v1/ringpools/x/numbers",
        "/API/v1/ringpools/x/numbers",
        "/api/v2/anything",
        "/api",
        "/Webhooks/calls/",
    ],
)
def test_any_path_under_the_api_prefix_is_a_json_404(client, path):
    response = api_post(client, path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json" and response.json()["error"] == "not_found"


def test_the_tag_answers_in_javascript_however_its_path_is_written(client, pool):
    upper = client.get(f"/tag/{pool.key}.JS")
    assert upper.status_code == 200 and pool.key in upper.content.decode()
    for path in ("/tag/", "/tag/nothing", "/TAG//x.js"):
        response = client.get(path)
        assert response.status_code == 404 and response["Content-Type"].startswith("text/javascript"), path


def test_head_is_answered_wherever_get_is(client, pool):
    for path in ("/healthz", "/livez", f"/tag/{pool.key}.js"):
        response = client.head(path)
        assert response.status_code == 200, path
    assert client.post("/livez").json()["error"] == "method_not_allowed"
    refused = client.put("/healthz")
    assert refused.status_code == 405 and refused["Allow"] == "GET, HEAD"


def test_a_preflight_is_refused_as_its_request_would_be(client, pool):
    preflight = {"Access-Control-Request-Method": "POST"}
    unknown = client.options("/api/v1/ringpools/rp_nope/numbers", headers={"Origin": ORIGIN, **preflight})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "pool_not_found")
    elsewhere = client.options(
        f"/api/v1/ringpools/{pool.key}/numbers", headers={"Origin": "https://evil.example", **preflight}
    )
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in elsewhere
    nowhere = client.options("/api/v1/ringpools/x/other", headers={"Origin": ORIGIN, **preflight})
    assert (nowhere.status_code, nowhere.json()["error"]) == (404, "not_found")
    allowed = client.options(f"/api/v1/ringpools/{pool.key}/numbers", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed["Access-Control-Allow-Origin"] == ORIGIN
    no_origin = client.options(f"/api/v1/ringpools/{pool.key}/numbers", headers=preflight)
    assert no_origin.status_code == 204 and not no_origin.content


def test_the_customer_pages_answer_a_designed_503_when_the_database_is_down(database_down, caplog):
    caplog.set_level(logging.ERROR)
    client = Client()
    client.cookies["sessionid"] = "k" * 32  # a well-formed key: looked up in the database
    for response in (
        client.get("/settings/"),
        client.get("/pools/"),
        Client().post("/account/sign-in/", {"username": "alice", "password": "x"}),
    ):
        assert response.status_code == 503
        assert response["Content-Type"].startswith("text/html") and response["Retry-After"] == "30"
        assert "RingPool cannot answer right now" in response.content.decode()
    assert all(r.exc_info is None for r in caplog.records if r.name == "ringpools.errors")


def test_an_unexpected_error_on_a_public_endpoint_is_json(client, pool, monkeypatch):
    """The last resort, handler500: never Django's HTML page on the API."""
    from ringpools import views

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views, "present_number", broken)
    client.raise_request_exception = False
    response = api_post(client, f"/api/v1/ringpools/{pool.key}/numbers")
    assert response.status_code == 500 and response.json()["error"] == "server_error"
