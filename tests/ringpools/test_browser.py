"""The tag in a real browser (Chromium through Playwright) on the demo landing page."""

from __future__ import annotations

import re
import time

import pytest

from ringpools import handout
from ringpools.handout import GOODBYE_GRACE
from ringpools.models import Lease
from tests.factories import PromoNumberFactory, RingPoolFactory
from tests.row_locks import numbers_locked

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PROMO = re.compile(r"\(805\) 555-01\d\d")


@pytest.fixture
def pool(live_server, settings):
    settings.DEBUG = True  # the demo landing page is served in DEBUG (or to staff)
    pool = RingPoolFactory(name="Browser pool", allowed_origins=[live_server.url])
    for line in range(140, 143):
        PromoNumberFactory(pool=pool, number=f"+18055550{line}")
    return pool


def shown_number(page) -> str:
    page.wait_for_function("document.getElementById('phone').getAttribute('data-ringpool-kind') !== null")
    return page.locator("#phone").inner_text()


def leave(page, live_server, visitors: int = 1) -> None:
    """Navigate away and wait for the goodbye beacons, so none reaches the server after the test."""
    page.goto(f"{live_server.url}/healthz")
    deadline = time.monotonic() + 10
    while Lease.objects.filter(released_at__isnull=False).count() < visitors and time.monotonic() < deadline:
        time.sleep(0.1)


def test_the_tag_swaps_in_a_promo_number_and_keeps_it_on_reload(live_server, pool, page):
    destination = pool.destination_number.number.as_national
    page.goto(f"{live_server.url}/demo/?pool={pool.key}&utm_source=newsletter")
    first = shown_number(page)
    assert first != destination and PROMO.fullmatch(first)
    href = page.locator("#phone").get_attribute("href")
    assert href.startswith("tel:+18055550")
    assert page.locator("#phone").get_attribute("data-ringpool-kind") == "promo"
    lease = Lease.objects.get()
    assert lease.params.get("utm_source") == "newsletter" and "/demo/" in lease.page_url

    page.reload()
    assert shown_number(page) == first
    assert Lease.objects.values("visitor_id").distinct().count() == 1
    leave(page, live_server)


def test_the_tag_says_a_visitor_is_new_only_on_the_page_that_made_its_id(live_server, pool, page):
    asked = []
    page.on(
        "request",
        lambda request: (
            asked.append(request.post_data_json)
            if request.method == "POST" and request.url.endswith("/numbers")
            else None
        ),
    )
    page.goto(f"{live_server.url}/demo/?pool={pool.key}")
    first = shown_number(page)
    page.reload()
    assert shown_number(page) == first
    assert [body["new_visitor"] for body in asked] == [True, False]
    assert asked[0]["visitor_id"] == asked[1]["visitor_id"]
    leave(page, live_server)


def test_another_visitor_sees_another_number(live_server, pool, browser):
    numbers = []
    for visitor in range(2):
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{live_server.url}/demo/?pool={pool.key}")
        numbers.append(shown_number(page))
        leave(page, live_server, visitors=visitor + 1)
        context.close()
    assert numbers[0] != numbers[1]


def test_leaving_the_page_releases_the_number(live_server, pool, page):
    page.goto(f"{live_server.url}/demo/?pool={pool.key}")
    shown_number(page)
    leave(page, live_server)
    lease = Lease.objects.get()
    assert lease.released_at is not None
    assert lease.expires_at == lease.released_at + GOODBYE_GRACE


@pytest.mark.postgres
def test_a_visitor_answered_busy_is_given_a_number_a_moment_later(live_server, pool, page, monkeypatch):
    """Every free number stays locked by other claims longer than the hand-out waits: the API answers
    503 busy, the page keeps its number, and the tag asks again after Retry-After (1 s)."""
    monkeypatch.setattr(handout, "BUSY_PATIENCE_SECONDS", 0.3)
    statuses: list[int] = []

    def answered(response) -> None:
        if response.url.endswith("/numbers") and response.request.method == "POST":
            statuses.append(response.status)

    page.on("response", answered)
    with numbers_locked(pool):
        page.goto(f"{live_server.url}/demo/?pool={pool.key}")
        deadline = time.monotonic() + 10
        while not statuses and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        assert page.locator("#phone").get_attribute("data-ringpool-kind") is None  # the page's own number
    assert PROMO.fullmatch(shown_number(page))
    assert statuses[:2] == [503, 200]
    leave(page, live_server)


def test_the_demo_page_shows_the_number_written_and_the_one_the_tag_put_in_its_place(demo, settings, page):
    """Issue 21: the original number first, the tracked one after the tag, a chooser of the demo pools
    whose default is the README walkthrough's (805) pool."""
    from ringpools.models import RingPool

    settings.DEBUG = True
    RingPool.objects.update(allowed_origins=[demo.url])
    local = RingPool.objects.get(key="rp_demo_local")
    page.goto(f"{demo.url}/demo/")
    assert page.locator("#pool-choice").input_value() == "rp_demo_local"
    assert page.locator("#original").inner_text() == local.destination_number.number.as_national
    page.wait_for_function("document.getElementById('tracked').textContent.startsWith('(805)')")
    tracked = page.locator("#tracked").inner_text()
    assert tracked != local.destination_number.number.as_national
    assert tracked == page.locator("#phone").inner_text()
    assert local.numbers.filter(number="+1" + re.sub(r"\D", "", tracked)).exists()
    assert page.locator("#kind").inner_text() == "promo"

    page.select_option("#pool-choice", "rp_demo_sf")
    page.wait_for_url(re.compile(r"pool=rp_demo_sf"))
    page.wait_for_function("document.getElementById('tracked').textContent.startsWith('(415)')")
    leave(page, demo, visitors=2)
