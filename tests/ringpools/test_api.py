"""The public visitor API (SPEC §3.7, §9): the contract, CORS per pool, and a 4xx JSON for every bad input."""

from __future__ import annotations

import json
import re

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from ringpools.handout import GOODBYE_GRACE
from ringpools.models import Lease, PoolHourlyFigures
from tests.factories import PromoNumberFactory, RingPoolFactory

pytestmark = pytest.mark.django_db
ORIGIN = "https://www.example.com"


@pytest.fixture
def pool():
    pool = RingPoolFactory(allowed_origins=[ORIGIN])
    PromoNumberFactory(pool=pool, number="+18055550142")
    return pool


def post(client: Client, key: str, body, content_type: str = "application/json", **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        f"/api/v1/ringpools/{key}/numbers", data=data, content_type=content_type, headers=headers
    )


def nothing_changed() -> bool:
    return not Lease.objects.exists() and not PoolHourlyFigures.objects.exists()


def test_it_answers_the_contract(client, pool):
    response = post(
        client,
        pool.key,
        {
            "visitor_id": "visitor-0001",
            "page_url": "https://www.example.com/a",
            "params": {"utm_source": "google"},
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["number"] == "+18055550142"
    assert body["display"] == "(805) 555-0142"
    assert body["kind"] == "promo"
    assert body["expires_at"].startswith("20")
    assert response["Cache-Control"] == "no-store"


def test_overflow_answers_have_no_expiry(client, pool):
    post(client, pool.key, {"visitor_id": "visitor-0001"})
    body = post(client, pool.key, {"visitor_id": "visitor-0002"}).json()
    assert body["kind"] == "destination" and body["expires_at"] is None
    assert body["number"] == str(pool.destination_number.number)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "invalid_json"),
        ("[1, 2]", "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        ({"visitor_id": "visitor-0001"}, "text/plain", 415, "unsupported_media_type"),
        ({"visitor_id": "visitor-0001"}, "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ({}, "application/json", 400, "missing_visitor_id"),
        ({"visitor_id": ""}, "application/json", 400, "missing_visitor_id"),
        ({"visitor_id": "short"}, "application/json", 400, "invalid_visitor_id"),
        ({"visitor_id": "x" * 129}, "application/json", 400, "invalid_visitor_id"),
        ({"visitor_id": "has spaces in it"}, "application/json", 400, "invalid_visitor_id"),
        ({"visitor_id": 12345678}, "application/json", 400, "invalid_visitor_id"),
        ({"visitor_id": "visitor-0001", "params": ["a"]}, "application/json", 400, "invalid_params"),
        ({"visitor_id": "visitor-0001", "params": "utm=1"}, "application/json", 400, "invalid_params"),
        (
            {"visitor_id": "visitor-0001", "params": {"a": {"b": 1}}},
            "application/json",
            400,
            "invalid_params",
        ),
        (
            {"visitor_id": "visitor-0001", "params": {f"k{i}": i for i in range(51)}},
            "application/json",
            400,
            "params_too_large",
        ),
        (
            {"visitor_id": "visitor-0001", "params": {"k": "v" * 5000}},
            "application/json",
            400,
            "params_too_large",
        ),
        (
            {"visitor_id": "visitor-0001", "page_url": "javascript:alert(1)"},
            "application/json",
            400,
            "invalid_page_url",
        ),
        ({"visitor_id": "visitor-0001", "page_url": 42}, "application/json", 400, "invalid_page_url"),
        ({"visitor_id": "visitor-0001", "page_url": False}, "application/json", 400, "invalid_page_url"),
        ({"visitor_id": "visitor-0001", "page_url": []}, "application/json", 400, "invalid_page_url"),
        ({"visitor_id": "visitor-0001", "keepalive": "yes"}, "application/json", 400, "invalid_keepalive"),
        ({"visitor_id": "visitor-0001", "new_visitor": 1}, "application/json", 400, "invalid_new_visitor"),
        ({"visitor_id": "visitor-0001", "pad": "x" * 17000}, "application/json", 413, "body_too_large"),
    ],
)
def test_bad_input_gets_a_clear_json_error_and_changes_nothing(
    client, pool, body, content_type, status, code
):
    response = post(client, pool.key, body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert response.json()["detail"]
    assert nothing_changed()


@pytest.mark.parametrize(
    "body",
    [
        {"visitor_id": None},
        {"visitor_id": ["visitor-0001"]},
        {"visitor_id": {"id": "visitor-0001"}},
        {"visitor_id": "visitor-0001", "page_url": "https://www.example.com/\u0000"},
        {"visitor_id": "visitor-0001", "params": {"utm": "a\u0000b"}},
        {"visitor_id": "visitor-0001", "params": {"a\u0000": "b"}},
        {"visitor_id": "visitor-0001\u0000"},
        {"visitor_id": "visitor-0001", "page_url": "http://[::1"},
        {"visitor_id": "visitor-0001", "params": {"n": 1e308 * 10}},
        "1e999999",
        '"just a string"',
        "null",
    ],
)
def test_odd_input_never_causes_a_server_error(client, pool, body):
    response = post(client, pool.key, body)
    assert response.status_code < 500
    assert response.json().get("error") or response.json().get("kind")


def test_a_database_that_cannot_answer_gives_a_json_503(client, pool, monkeypatch):
    from django.db import OperationalError

    from ringpools import views

    def database_down(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(views, "present_number", database_down)
    response = post(client, pool.key, {"visitor_id": "visitor-0001"})
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"


def test_an_unknown_pool_is_404(client, pool):
    response = post(client, "rp_nope", {"visitor_id": "visitor-0001"})
    assert response.status_code == 404 and response.json()["error"] == "pool_not_found"


def test_an_inactive_pool_is_404(client, pool):
    pool.is_active = False
    pool.save()
    response = post(client, pool.key, {"visitor_id": "visitor-0001"})
    assert response.status_code == 404 and response.json()["error"] == "pool_not_found"
    assert nothing_changed()


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_are_405(client, pool, method):
    response = getattr(client, method)(f"/api/v1/ringpools/{pool.key}/numbers")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


def test_an_allowed_origin_gets_cors_answers(client, pool):
    preflight = client.options(
        f"/api/v1/ringpools/{pool.key}/numbers",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    response = post(client, pool.key, {"visitor_id": "visitor-0001"}, Origin=ORIGIN)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    # The tag reads Retry-After of a 503 or 429 answer: the browser shows it only when exposed.
    assert "retry-after" in response["Access-Control-Expose-Headers"].lower()


def test_another_origin_is_refused_and_gets_no_number(client, pool):
    preflight = client.options(
        f"/api/v1/ringpools/{pool.key}/numbers",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in preflight
    response = post(client, pool.key, {"visitor_id": "visitor-0001"}, Origin="https://evil.example")
    assert response.status_code == 403 and response.json()["error"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response
    assert nothing_changed()


def test_one_pools_origin_is_not_allowed_on_another_pool(client, pool):
    other = RingPoolFactory(allowed_origins=["https://other.example"])
    response = post(client, other.key, {"visitor_id": "visitor-0001"}, Origin=ORIGIN)
    assert response.status_code == 403


def test_the_release_beacon_frees_the_number(client, pool):
    post(client, pool.key, {"visitor_id": "visitor-0001"})
    response = client.post(
        f"/api/v1/ringpools/{pool.key}/numbers/release",
        data=json.dumps({"visitor_id": "visitor-0001"}),
        content_type="text/plain",
    )
    assert response.status_code == 200 and response.json() == {"released": True}
    with time_machine.travel(timezone.now() + GOODBYE_GRACE, tick=False):
        assert post(client, pool.key, {"visitor_id": "visitor-0002"}).json()["kind"] == "promo"
    assert Lease.objects.get(visitor_id="visitor-0001").released_at is not None


def test_a_release_with_bad_input_is_a_json_error(client, pool):
    response = client.post(
        f"/api/v1/ringpools/{pool.key}/numbers/release", data="nope", content_type="text/plain"
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_the_tag_is_a_cacheable_script_for_an_active_pool(client, pool):
    response = client.get(f"/tag/{pool.key}.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert "public" in response["Cache-Control"] and "max-age" in response["Cache-Control"]
    script = response.content.decode()
    api_url = json.loads(re.search(r'var API = ("[^"]*");', script).group(1))  # JS string, escapes decoded
    assert api_url == f"http://testserver/api/v1/ringpools/{pool.key}/numbers"
    assert "data-ringpool-number" in script and "pagehide" in script
    assert client.get("/tag/rp_nope.js").status_code == 404


# --- Regressions: inputs that gave a 500 or a 503 -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"visitor_id": "visitor-0001", "params": ' + "[" * 5000 + "]" * 5000 + "}", "invalid_json"),
        ('{"visitor_id": "visitor-0001", "x": ' + '{"a":' * 2500 + "1" + "}" * 2500 + "}", "invalid_json"),
        ('{"visitor_id": "visitor-0001", "page_url": "https://www.example.com/\\ud800"}', "invalid_json"),
        ('{"visitor_id": "visitor-0001", "params": {"utm": "\\udfff"}}', "invalid_json"),
        ('{"visitor_id": "visitor-0001", "params": {"\\ud83d": "a"}}', "invalid_json"),
        ('{"visitor_id": "visitor-0001", "params": {"n": ' + "9" * 5000 + "}}", "invalid_json"),
    ],
)
def test_deep_nesting_lone_surrogates_and_huge_numbers_are_a_400(client, pool, body, code, caplog):
    response = post(client, pool.key, body)
    assert response.status_code == 400 and response.json()["error"] == code
    assert nothing_changed()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize("key", ["rp_\x00abc", "rp_abc\x00", "x" * 41, "rp_é", "rp_a b", "rp_%ff"])
def test_a_pool_key_that_cannot_be_one_is_a_404_without_reaching_the_database(
    client, pool, key, django_assert_num_queries, caplog
):
    with django_assert_num_queries(0):
        response = post(client, key, {"visitor_id": "visitor-0001"}, Origin=ORIGIN)
        tag = client.get(f"/tag/{key}.js")
    assert response.status_code == 404 and response.json()["error"] == "pool_not_found"
    assert tag.status_code == 404 and tag["Content-Type"].startswith("text/javascript")
    assert "\x00" not in caplog.text


def test_params_are_measured_in_utf8_bytes_not_escapes(client, pool):
    fits = {"q": "é" * 700}  # 1,400 bytes; 4,200 characters once escaped as \u00e9
    assert post(client, pool.key, {"visitor_id": "visitor-0001", "params": fits}).status_code == 200
    assert Lease.objects.get(visitor_id="visitor-0001").params == fits
    too_big = {"q": "é" * 2100}  # 4,200 bytes
    response = post(client, pool.key, {"visitor_id": "visitor-0002", "params": too_big})
    assert response.status_code == 400 and response.json()["error"] == "params_too_large"


# --- The database cannot answer: a JSON 503 whatever the headers ----------------------------------


def _calls_webhook(client: Client, **headers):
    return client.post(
        "/webhooks/calls", {"CallSid": "CA1", "To": "+18055550142", "From": "+12125550111"}, headers=headers
    )


@pytest.mark.parametrize("headers", [{}, {"Origin": ORIGIN}, {"Origin": "https://evil.example"}])
def test_a_database_that_cannot_answer_gives_a_json_503_on_every_public_endpoint(
    client, database_down, headers
):
    key = "rp_demo_local"
    answers = {
        "numbers": post(client, key, {"visitor_id": "visitor-0001"}, **headers),
        "release": client.post(
            f"/api/v1/ringpools/{key}/numbers/release",
            data=json.dumps({"visitor_id": "visitor-0001"}),
            content_type="text/plain",
            headers=headers,
        ),
        "preflight": client.options(
            f"/api/v1/ringpools/{key}/numbers",
            headers={**headers, "Access-Control-Request-Method": "POST"},
        ),
        "webhook": _calls_webhook(client, **headers),
    }
    for name, response in answers.items():
        assert response.status_code == 503, name
        assert response.json()["error"] == "unavailable", name
    tag = client.get(f"/tag/{key}.js", headers=headers)
    assert tag.status_code == 503 and tag["Content-Type"].startswith("text/javascript")
    assert client.get("/healthz").status_code == 503


def test_the_tag_answers_a_preflight_with_javascript_not_cors(client, pool):
    response = client.options(
        f"/tag/{pool.key}.js", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 405 and response["Content-Type"].startswith("text/javascript")
    assert "Access-Control-Allow-Methods" not in response


def test_public_endpoints_answer_their_own_way_to_callers_without_a_csrf_token(pool):
    """Landing pages and probes have no session or CSRF token: no endpoint answers Django's HTML 403."""
    strict = Client(enforce_csrf_checks=True)
    elsewhere = strict.post("/api/v1/nothing-here", data="{}", content_type="application/json")
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "not_found")
    tag = strict.post(f"/tag/{pool.key}.js")
    assert tag.status_code == 405 and tag["Content-Type"].startswith("text/javascript")
    assert strict.post("/healthz").status_code == 405
    assert strict.post("/livez").status_code == 405
    number = strict.post(
        f"/api/v1/ringpools/{pool.key}/numbers",
        data=json.dumps({"visitor_id": "visitor-0001"}),
        content_type="application/json",
    )
    assert number.json()["kind"] == "promo"


def test_made_up_pool_keys_do_not_evict_the_pools_being_served(
    pool, settings, monkeypatch, django_assert_num_queries
):
    from ringpools import selectors

    settings.RINGPOOL_POOL_CACHE_SECONDS = 60
    monkeypatch.setattr(selectors, "CACHE_LIMIT", 5)
    assert selectors.handout_pool(pool.key) is not None
    for i in range(50):  # a client inventing keys
        assert selectors.handout_pool(f"rp_madeup{i:04d}") is None
    with django_assert_num_queries(0):
        assert selectors.handout_pool(pool.key).id == pool.id
        assert selectors.handout_pool("rp_madeup0049") is None  # a recent miss is remembered too


def test_a_tag_key_with_a_newline_gets_the_tags_javascript_404(client):
    response = client.get("/tag/%0A.js")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/javascript")
