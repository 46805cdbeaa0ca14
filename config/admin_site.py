"""The back office's admin site: the product's own models first on the index, then the tools'
(sign-in lockouts, periodic tasks, users and groups)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest

# The product's apps, in the order an account manager looks for them.
PRODUCT_APPS = ("ringpools", "scaling", "accounts")


class RingPoolAdminSite(admin.AdminSite):
    site_header = "RingPool back office"
    site_title = "RingPool"
    index_title = "Accounts, pools, numbers and scaling"
    # The back office is the staff's site: no "View site" link (it led to the demo page).
    site_url = None
    # The app list is on the home page; the sidebar copy of it would take a quarter of a 1,366 px screen.
    enable_nav_sidebar = False

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        place = {label: position for position, label in enumerate(PRODUCT_APPS)}
        return sorted(
            apps, key=lambda app: place.get(app["app_label"], len(place))
        )  # stable: the rest keep theirs


class RingPoolAdminConfig(AdminConfig):
    default_site = "config.admin_site.RingPoolAdminSite"
