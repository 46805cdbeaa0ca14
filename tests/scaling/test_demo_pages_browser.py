"""The demo's month, as a newcomer sees it in Chromium at 1,366 x 768 (issue 21): the customer's
health pages at every range and the back office's pool page count the same calls, overflows, growth
and prunes as the records, and fit the window. Screenshots of each page are kept in the test output
folder (`test-results/`), for the run's artefacts."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from ringpools.choices import NumberRole, NumberState
from ringpools.figures import figures_window
from ringpools.models import Call, PoolHourlyFigures, RingPool
from scaling.choices import EventKind, Trigger
from scaling.lab.whatif import pool_recommendation
from scaling.models import ScalingEvent
from scaling.pages.views import HEALTH_DAYS
from tests.demo import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "ringpool-demo"
VIEWPORT = {"width": 1366, "height": 768}


@pytest.fixture
def month_demo(live_server, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.DEBUG = True  # as bin/demo runs: the demo landing page is served in DEBUG
    seed_demo(days=None)  # the whole month bin/demo plays
    return live_server


def signed_in(browser: Browser, live_server, username: str) -> Page:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    if username == "staff":
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
    else:
        page.goto(f"{live_server.url}/account/sign-in/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    return page


def fits(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the window"


def loaded_in_one_window(page: Page, url: str, days: int) -> tuple[datetime, datetime]:
    """Open `url` and return the figures window it was rendered in (again if an hour turned meanwhile)."""
    while True:
        before = figures_window(timezone.now(), days)
        page.goto(url)
        if figures_window(timezone.now(), days) == before:
            return before


def recorded(pool: RingPool, window: tuple[datetime, datetime]) -> dict[str, int]:
    """What the records say about the pool in the window: the figures a page must show."""
    start, end = window
    events = ScalingEvent.objects.filter(pool=pool, created_at__gte=start, created_at__lt=end)
    overflows = PoolHourlyFigures.objects.filter(pool=pool, hour__gte=start, hour__lt=end)
    return {
        "calls": Call.objects.filter(pool=pool, received_at__gte=start, received_at__lt=end).count(),
        "overflows": sum(overflows.values_list("overflows", flat=True)),
        "grown": events.filter(kind=EventKind.NUMBER_ADDED, trigger=Trigger.GROWTH).count(),
        "pruned": events.filter(kind=EventKind.NUMBER_REMOVED, trigger=Trigger.PRUNE).count(),
    }


def health_figures(page: Page) -> dict[str, str]:
    return dict(
        zip(
            page.locator(".health-figures dt").all_inner_texts(),
            page.locator(".health-figures dd").all_inner_texts(),
            strict=True,
        )
    )


def test_the_demo_month_reads_the_same_on_every_page(month_demo, browser: Browser, output_path):
    shots = Path(output_path) / "demo-month"
    shots.mkdir(parents=True, exist_ok=True)
    shot: Callable[[Page, str], None] = lambda page, name: page.screenshot(path=str(shots / f"{name}.png"))  # noqa: E731

    alice = signed_in(browser, month_demo, "alice")
    alice.goto(f"{month_demo.url}/pools/")
    fits(alice)
    shot(alice, "pools")
    seen_growth = seen_prune = 0
    for pool in RingPool.objects.filter(key__in=["rp_demo_local", "rp_demo_tollfree"]):
        size = pool.numbers.filter(state=NumberState.ACTIVE, role=NumberRole.ROTATING).count()
        for days in HEALTH_DAYS:
            window = loaded_in_one_window(
                alice, f"{month_demo.url}/pools/{pool.pk}/health/?days={days}", days
            )
            shown, records = health_figures(alice), recorded(pool, window)
            assert shown["Numbers now"] == str(size)
            assert shown["Calls"] == f"{records['calls']:,}", (pool.key, days)
            assert shown["Overflow presentations"] == f"{records['overflows']:,}", (pool.key, days)
            assert shown["Numbers added by growth"] == str(records["grown"]), (pool.key, days)
            assert shown["Numbers removed by pruning"] == str(records["pruned"]), (pool.key, days)
            seen_growth, seen_prune = seen_growth + records["grown"], seen_prune + records["pruned"]
            fits(alice)
            shot(alice, f"health-{pool.key}-{days}-days")
    assert seen_growth and seen_prune, "the month shows growth and a month-end prune"

    # The recommended size and its what-ifs, from the pool's own 30 days, on the customer's page ...
    pool = RingPool.objects.get(key="rp_demo_local")
    advice = pool_recommendation(pool=pool, now=timezone.now())
    alice.goto(f"{month_demo.url}/pools/{pool.pk}/health/?days=30")
    panel = alice.locator("#recommended-size")
    expect(panel.get_by_role("heading")).to_have_text(f"Recommended size: {advice.recommended} numbers")
    expect(panel.locator(".recommendation-reason")).to_have_text(advice.reason)
    assert "numbers at once" in advice.reason and "% headroom" in advice.reason
    rows = panel.locator("#what-if tbody tr")
    assert rows.count() == len(advice.what_ifs) >= 3
    expect(rows.filter(has_text="(today)")).to_contain_text(
        f"{pool.numbers.filter(state='active', role='rotating').count()} numbers"
    )
    expect(rows.last).to_contain_text("policy, from")
    panel.scroll_into_view_if_needed()
    fits(alice)
    shot(alice, "recommended-size-rp_demo_local")

    # The back office's glance counts the same windows as the customer's page.
    staff = signed_in(browser, month_demo, "staff")
    pool = RingPool.objects.get(key="rp_demo_local")
    for days, label in ((1, "Last 1 day"), (7, "Last 7 days")):
        window = loaded_in_one_window(
            staff, f"{month_demo.url}/admin/ringpools/ringpool/{pool.pk}/change/", days
        )
        glance = staff.locator(".glance-period", has_text=label).inner_text()
        records = recorded(pool, window)
        calls = f"{records['calls']} call" + ("" if records["calls"] == 1 else "s")
        assert calls in glance, glance
        assert f"{records['overflows']} overflow" in glance, glance
    # ... and the same on the back office's pool page.
    admin_panel = staff.locator("#recommended-size")
    expect(admin_panel.get_by_role("heading")).to_have_text(f"Recommended size: {advice.recommended} numbers")
    expect(admin_panel.locator(".recommendation-reason")).to_have_text(advice.reason)
    assert admin_panel.locator("#what-if tbody tr").count() == len(advice.what_ifs)
    fits(staff)
    staff.screenshot(path=str(shots / "admin-pool-rp_demo_local.png"), full_page=True)
    tollfree = RingPool.objects.get(key="rp_demo_tollfree")
    staff.goto(f"{month_demo.url}/admin/ringpools/ringpool/{tollfree.pk}/prune/")
    fits(staff)
    shot(staff, "admin-prune-preview-rp_demo_tollfree")

    visitor = browser.new_context(viewport=VIEWPORT).new_page()
    visitor.goto(f"{month_demo.url}/demo/")
    expect(visitor.locator("#tracked")).to_have_text(re.compile(r"\(\d{3}\) \d{3}-\d{4}"))
    fits(visitor)
    shot(visitor, "demo-landing")
