"""The back office's frame (issue 21): the product's models first on the admin index, no "View site"
link to the demo page, a favicon wherever a browser asks for one, the site's root leads customers
to their pools."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db


def test_the_admin_index_lists_the_products_apps_first(client):
    client.force_login(factories.UserFactory(is_staff=True, is_superuser=True))
    html = client.get(reverse("admin:index")).content.decode()
    apps = re.findall(r'<caption>\s*<a href="/admin/([a-z_]+)/"', html)
    assert apps[:3] == ["ringpools", "scaling", "accounts"], apps
    assert set(apps[3:]) >= {"axes", "django_celery_beat", "auth"}
    assert "View site" not in html
    assert '<link rel="icon" href="/favicon.ico" type="image/svg+xml">' in html


def test_the_favicon_is_served_where_browsers_ask(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg") and "max-age" in response["Cache-Control"]
    assert client.post("/favicon.ico").status_code == 405


def test_the_sites_root_leads_to_the_customers_pools(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("pool-list")
