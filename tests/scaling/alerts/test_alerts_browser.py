"""Open alerts in a real browser (Chromium through Playwright), on the demo data: the super user sees
the capped pool's banner and what to do, opens the Alerts page and turns her mail off; the account
manager sees it under "Needs attention" on the admin index."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "ringpool-demo"


def test_the_super_user_sees_the_banner_and_turns_her_alert_mail_off(demo, page: Page, output_path):
    page.goto(f"{demo.url}/account/sign-in/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pools").click()

    banner = page.get_by_role("alert")
    expect(banner).to_contain_text("At its maximum size while overflowing · Storm Repair — Ventura")
    expect(banner).to_contain_text("turned 9 visitors away to the overflow number in the last hour")
    expect(banner).to_contain_text("What to do: Raise the maximum size")
    page.screenshot(path=f"{output_path}/pools-with-alert.png", full_page=True)

    banner.get_by_role("link", name="All alerts").click()
    expect(page.get_by_role("heading", name="Alerts", level=1)).to_be_visible()
    mail = page.get_by_label("E-mail me when an alert about this account opens and when it is resolved")
    expect(mail).to_be_checked()
    mail.uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Alert mail is off for you; the daily digest is off.")
    expect(mail).not_to_be_checked()
    assert User.objects.get(username="alice").alert_emails is False


def test_the_account_manager_sees_what_needs_attention_on_the_admin_index(demo, page: Page):
    page.goto(f"{demo.url}/admin/login/")
    page.get_by_label("Username").fill("staff")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    attention = page.locator("#needs-attention")
    expect(attention).to_contain_text("Needs attention (1 open alert)")
    expect(attention).to_contain_text("Storm Repair — Ventura")
    attention.get_by_role("link", name="Every open alert, filterable").click()
    expect(page.locator("#result_list")).to_contain_text("At its maximum size while overflowing")
