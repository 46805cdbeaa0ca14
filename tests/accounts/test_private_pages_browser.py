"""Signed-in pages carry a strict Content-Security-Policy and `Cache-Control: private, no-store`, and
still work in Chromium: no policy violation on any customer or back-office page of the demo."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from ringpools.models import RingPool
from tests.demo import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "ringpool-demo"
# Every violation the page reports, kept in the page itself (securitypolicyviolation events).
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", e =>
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture
def demo(live_server, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # the live server is http://
    seed_demo()
    return live_server


def visit(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    headers = response.headers
    policy = headers.get("content-security-policy", "")
    assert (
        "default-src 'self'" in policy
        and "script-src 'self'" in policy
        and "frame-ancestors 'none'" in policy
    )
    cache = headers.get("cache-control", "")
    assert "private" in cache and "no-store" in cache, (url, cache)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__violations") == [], url


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/account/sign-in/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def test_the_customer_pages_work_under_their_policy(demo, page: Page):
    from accounts.choices import Role
    from accounts.models import Account, Membership, User

    # A second account, so the switcher is there (one account shows its name instead).
    second = Account.objects.create(name="Second Office", slug="second-office", timezone="America/Chicago")
    Membership.objects.create(user=User.objects.get(username="alice"), account=second, role=Role.MEMBER)
    page.add_init_script(WATCH)
    sign_in(page, demo.url, "alice")
    pool = RingPool.objects.get(key="rp_demo_local")
    for path in (
        "/settings/",
        "/settings/network/ringpool-auto-scaling/",
        "/pools/",
        f"/pools/{pool.pk}/health/?days=1",
        f"/pools/{pool.pk}/health/?days=30",
    ):
        visit(page, f"{demo.url}{path}")
    # The charts are drawn, styled by the stylesheet (not inline style), legend swatches included.
    expect(page.locator("svg.pool-health-chart").first).to_be_visible()
    swatch = page.locator(".legend-swatch").first
    assert swatch.bounding_box()["width"] > 5
    # A form still posts under form-action 'self': the switcher takes the person back to the page.
    page.get_by_role("button", name="Switch").click()
    expect(page.get_by_text("You are now looking at Acme Home Services")).to_be_visible()
    assert page.evaluate("window.__violations") == []


def test_the_back_office_works_under_the_policy(demo, page: Page):
    page.add_init_script(WATCH)
    page.goto(f"{demo.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    pool = RingPool.objects.get(key="rp_demo_local")
    for path in (
        "/admin/",
        "/admin/ringpools/ringpool/",
        f"/admin/ringpools/ringpool/{pool.pk}/change/",
        f"/admin/ringpools/ringpool/{pool.pk}/prune/",
        "/admin/scaling/scalingevent/",
    ):
        visit(page, f"{demo.url}{path}")
    # The audit page's own rules apply from the stylesheet: its glance tiles are laid out in a grid.
    page.goto(f"{demo.url}/admin/ringpools/ringpool/{pool.pk}/change/")
    assert page.eval_on_selector(".pool-audit .glance", "e => getComputedStyle(e).display") == "grid"
    assert page.evaluate("window.__violations") == []


def test_the_demo_staff_login_is_an_account_manager_not_a_superuser(demo, page: Page):
    from accounts.models import User

    staff, admin = User.objects.get(username="staff"), User.objects.get(username="admin")
    assert staff.is_staff and not staff.is_superuser and staff.groups.filter(name="Account managers").exists()
    assert admin.is_superuser
    sign_in(page, demo.url, "staff")
    expect(page.get_by_text("Account manager (read-only) of Acme Home Services")).to_be_visible()
