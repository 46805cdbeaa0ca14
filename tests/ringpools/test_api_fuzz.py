"""No 5xx from any input (SPEC §3.7): generated bodies, headers, paths and methods against the public
endpoints of a healthy database. Each answer is JSON (or the tag's JavaScript)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import PromoNumberFactory, RingPoolFactory

pytestmark = pytest.mark.django_db
ORIGIN = "https://www.example.com"

# Any text, lone surrogates included (JSON can carry them as \udXXX escapes).
any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=40)
header_text = st.text(alphabet=st.characters(max_codepoint=255, blacklist_characters="\r\n"), max_size=60)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
visitor_ids = st.one_of(st.from_regex(r"\A[A-Za-z0-9_-]{8,20}\Z"), any_text, json_values)
bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda fields, extra: json.dumps({**extra, **fields}),
        st.fixed_dictionaries(
            {},
            optional={
                "visitor_id": visitor_ids,
                "page_url": st.one_of(any_text, st.just("https://www.example.com/a?b=c"), json_values),
                "params": st.one_of(st.dictionaries(any_text, json_values, max_size=6), json_values),
                "keepalive": json_values,
                "new_visitor": json_values,
            },
        ),
        st.dictionaries(any_text, json_values, max_size=3),
    ),
    st.integers(min_value=1, max_value=3000).map(lambda depth: "[" * depth + "]" * depth),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Origin": st.one_of(st.just(ORIGIN), header_text),
        "X-Forwarded-For": header_text,
        "Access-Control-Request-Method": st.sampled_from(["POST", "GET", "DELETE"]),
        "X-Twilio-Signature": header_text,
    },
)
content_types = st.one_of(
    st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]), header_text
)


@pytest.fixture
def pool(settings):
    settings.RINGPOOL_RATE_LIMIT_URL = "off"
    pool = RingPoolFactory(allowed_origins=[ORIGIN])
    for _ in range(3):
        PromoNumberFactory(pool=pool)
    return pool


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    endpoint=st.sampled_from(["numbers", "release", "tag", "webhook"]),
    method=st.sampled_from(["post", "post", "post", "options", "get", "put"]),
    key=st.one_of(st.none(), any_text),
    body=bodies,
    content_type=content_types,
    sent_headers=headers,
)
def test_no_input_gets_a_server_error(pool, endpoint, method, key, body, content_type, sent_headers):
    key = pool.key if key is None else quote(key.encode("utf-8", "surrogatepass"), safe="")
    path = {
        "numbers": f"/api/v1/ringpools/{key}/numbers",
        "release": f"/api/v1/ringpools/{key}/numbers/release",
        "tag": f"/tag/{key}.js",
        "webhook": "/webhooks/calls",
    }[endpoint]
    client = Client()
    if method in ("get", "options"):
        response = getattr(client, method)(path, headers=sent_headers)
    else:
        response = getattr(client, method)(path, data=body, content_type=content_type, headers=sent_headers)
    assert response.status_code < 500, (response.status_code, response.content[:300])
    kind = response.get("Content-Type", "")
    if endpoint == "tag":
        assert kind.startswith("text/javascript")
    elif endpoint in ("numbers", "release") and response.content:
        assert kind == "application/json", (response.status_code, kind, response.content[:200])
