"""The super user's pages in a real browser (Chromium through Playwright), on the demo data.

Screenshots of the settings page and of a pool health page are kept in the test output folder
(pytest-playwright's --output, `test-results/` by default) for CI to keep.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Account
from ringpools.models import Campaign, DestinationNumber
from scaling.choices import Scope
from scaling.models import AutoScalingSettings
from scaling.services import ringpool_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "ringpool-demo"


def sign_in(page: Page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/account/sign-in/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def open_auto_scaling(page: Page) -> None:
    """The seed article's three steps: sidebar Settings, Network section, RingPool Auto-Scaling."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    network = page.locator("section", has=page.get_by_role("heading", name="Network"))
    network.get_by_role("link", name="RingPool Auto-Scaling").click()
    expect(page.get_by_role("heading", name="RingPool Auto-Scaling", level=1)).to_be_visible()


def test_the_demo_super_user_narrows_auto_scaling_to_selected_campaigns(demo, page: Page, output_path):
    sign_in(page, demo, "alice")
    open_auto_scaling(page)

    page.get_by_label("Only selected campaigns").check()
    roofing = page.get_by_role("switch", name="Roofing Leads")
    expect(roofing).to_be_checked()
    roofing.click()  # one click flips it
    expect(roofing).not_to_be_checked()
    # Keyboard too: the switch for new pools is a real checkbox, toggled with the space bar.
    new_pools = page.get_by_role("switch", name="Enable auto-scaling for each new RingPool")
    new_pools.focus()
    page.keyboard.press("Space")
    expect(new_pools).not_to_be_checked()
    page.get_by_role("button", name="Save settings").click()

    expect(page.get_by_role("status")).to_contain_text(
        "Saved. Enable auto-scaling for each new RingPool: on → off"
    )
    expect(page.get_by_role("status")).to_contain_text("Scope: All campaigns → Only selected campaigns")
    page.reload()
    expect(page.get_by_role("switch", name="Roofing Leads")).not_to_be_checked()
    expect(page.get_by_role("switch", name="Spring Sale")).to_be_checked()
    expect(page.get_by_label("Only selected campaigns")).to_be_checked()
    roofing_pool = page.get_by_role("row", name="Roofing Leads — national")
    expect(roofing_pool).to_contain_text("Not scaling")
    expect(roofing_pool).to_contain_text("Campaign outside the account's scope")

    history = page.locator("section", has=page.get_by_role("heading", name="Change history"))
    newest = history.get_by_role("row").nth(1)
    expect(newest).to_contain_text("Alice")
    expect(newest).to_contain_text("Scope: All campaigns → Only selected campaigns")
    expect(newest).to_contain_text("Selected campaigns: none → Spring Sale")
    page.screenshot(path=str(Path(output_path) / "settings-page.png"), full_page=True)

    settings = AutoScalingSettings.objects.get(account__slug="acme")
    assert settings.scope == Scope.SELECTED_CAMPAIGNS
    # The demo's third campaign (Storm Repair, the capped pool's) stays selected: only Roofing went.
    assert sorted(settings.campaigns.values_list("name", flat=True)) == ["Spring Sale", "Storm Repair"]

    # A pool created afterwards inherits the new defaults, and the page says it does not scale.
    account = Account.objects.get(slug="acme")
    created = ringpool_create(
        account=account,
        campaign=Campaign.objects.get(account=account, name="Spring Sale"),
        destination_number=DestinationNumber.objects.filter(account=account).first(),
        name="Summer Sale — created later",
    )
    assert created.auto_scaling_enabled is False and created.overflow_number is not None
    page.reload()
    expect(page.get_by_role("row", name="Summer Sale — created later")).to_contain_text(
        "Turned off for this pool"
    )


def test_a_member_sees_the_settings_read_only(demo, page: Page):
    sign_in(page, demo, "mia")
    open_auto_scaling(page)
    expect(page.get_by_role("note")).to_contain_text("Read-only.")
    expect(page.get_by_role("switch", name="Roofing Leads")).to_be_disabled()
    expect(page.get_by_label("All campaigns")).to_be_disabled()
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)


def test_the_pool_health_page_shows_its_charts(demo, page: Page, output_path):
    sign_in(page, demo, "alice")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pools").click()
    page.get_by_role("link", name="Health of Spring Sale — Santa Barbara").click()
    chart = page.locator("svg.pool-health-chart")
    expect(chart).to_be_visible()
    expect(page.locator(".health-verdict")).to_contain_text("Too small at times")
    # The demo's rush three days ago: overflow bars and the growth marked on the chart.
    assert chart.locator(".series-overflows rect").count() >= 1
    expect(chart.locator(".event-growth").first).to_contain_text("+")
    box = chart.bounding_box()
    assert box and box["width"] > 600 and box["height"] > 300
    page.screenshot(path=str(Path(output_path) / "pool-health.png"), full_page=True)
