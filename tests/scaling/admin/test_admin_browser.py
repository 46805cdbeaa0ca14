"""The back office in Chromium: a demo pool's audit page (kept as a screenshot), lists that fit 1,366 px."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from ringpools.models import Lease, RingPool
from tests.demo import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "admin"
WIDTH = 1366


@pytest.fixture
def demo(live_server, settings):
    seed_demo()
    api = Client()
    pool = RingPool.objects.get(key="rp_demo_local")
    # Visitors take every free number; two more are shown the overflow number.
    free = pool.numbers.filter(state="active", role="rotating", busy_until__lte=timezone.now()).count()
    for visitor in range(free + 2):
        response = api.post(
            f"/api/v1/ringpools/{pool.key}/numbers",
            {
                "visitor_id": f"demo-visitor-{visitor:02d}",
                "page_url": "https://www.example.com/spring",
                "params": {"utm_source": "newsletter"},
            },
            content_type="application/json",
            headers={"Origin": "http://127.0.0.1:8000"},
        )
        assert response.status_code == 200
    held = Lease.objects.get(pool=pool, visitor_id="demo-visitor-00").number
    call_command("test_call", str(held.number), stdout=StringIO())
    return pool


@pytest.fixture
def staff_page(live_server, demo, browser):
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "ringpool-demo")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    yield page
    context.close()


def test_a_demo_pools_page_shows_its_panels_and_charts(live_server, demo, staff_page):
    page = staff_page
    page.goto(f"{live_server.url}/admin/ringpools/ringpool/{demo.pk}/change/")
    for panel in (
        "#pool-audit",
        "#glance-numbers",
        "#next-growth-panel",
        "#prune-preview-panel",
        "svg.pool-health-chart",
        "#pool-numbers",
        "#pool-events",
    ):
        assert page.locator(panel).first.is_visible(), panel
    size = demo.numbers.filter(state="active", role="rotating").count()
    glance = page.locator("#glance-numbers").inner_text()
    assert str(size) in glance and "overflow number" in glance
    assert f"{size} of {size}" in page.locator("#glance-in-use").inner_text()  # all held now
    assert "overflow" in page.locator(".glance-period").first.inner_text()
    assert page.locator("#pool-numbers tbody tr").count() == size + 1  # and the overflow number
    assert "Number added" in page.locator("#pool-events").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "pool-audit-rp_demo_local.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


@pytest.mark.parametrize(
    "listing",
    [
        "ringpools/ringpool",
        "ringpools/promonumber",
        "ringpools/call",
        "ringpools/lease",
        "scaling/scalingevent",
        "scaling/autoscalingsettings",
        "scaling/carrierorder",
    ],
)
def test_lists_fit_1366_px_one_line_per_row(live_server, staff_page, listing):
    page = staff_page
    page.goto(f"{live_server.url}/admin/{listing}/")
    assert page.locator("#result_list tbody tr").count() >= 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"list-{listing.replace('/', '-')}.png"))
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{listing} is {overflow}px wider than the window"
    hidden = page.evaluate(
        "document.querySelector('#result_list').scrollWidth - document.querySelector('.results').clientWidth"
    )
    assert hidden <= 0, f"{listing} hides {hidden}px of its columns behind a scroll bar"
    heights = page.evaluate(
        "Array.from(document.querySelectorAll('#result_list tbody tr'))"
        ".map(r => r.getBoundingClientRect().height)"
    )
    line = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('#result_list td')).lineHeight) || 18"
    )
    assert max(heights) <= 2.5 * line + 16, (listing, heights, line)
