"""Test set-up shared by every test module.

Tests that need PostgreSQL, Redis or Chromium carry a marker. Where the service is missing they are
skipped with the reason — unless RINGPOOL_REQUIRE_SERVICES names it (CI sets
"postgres,redis,browser"), in which case the missing service fails the run instead.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.db import connection

from ringpools.ratelimit import rate_limits_reset
from ringpools.selectors import clear_handout_cache

# Playwright's sync API runs an event loop in the test thread; Django must not refuse ORM calls there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
REQUIRED = {s.strip() for s in os.environ.get("RINGPOOL_REQUIRE_SERVICES", "").split(",") if s.strip()}


def _broker_url() -> str:
    from django.conf import settings

    return settings.CELERY_BROKER_URL


def _missing(service: str) -> str | None:
    if service == "postgres":
        return (
            None if connection.vendor == "postgresql" else "needs PostgreSQL: set DATABASE_URL=postgres://..."
        )
    if service == "redis":
        url = _broker_url()
        if not url.startswith("redis://"):
            return "needs a Redis broker: set CELERY_BROKER_URL=redis://..."
        try:
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        except Exception as error:
            return f"Redis at {url} does not answer: {error}"
        return None
    if service == "browser":
        return None if shutil.which(CHROMIUM) else f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    raise ValueError(service)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    verdicts: dict[str, str | None] = {}
    for item in items:
        for service in ("postgres", "redis", "browser"):
            if item.get_closest_marker(service) is None:
                continue
            if service not in verdicts:
                verdicts[service] = _missing(service)
            reason = verdicts[service]
            if reason is None:
                continue
            if service in REQUIRED:
                item.user_properties.append(("required_but_missing", reason))
            else:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item: pytest.Item) -> None:
    reason = dict(item.user_properties).get("required_but_missing")
    if reason:
        pytest.fail(f"RINGPOOL_REQUIRE_SERVICES says this test must run, but it {reason}", pytrace=False)


@pytest.fixture(autouse=True)
def _test_settings(settings) -> None:
    # Production settings, except: no manifest (tests do not run collectstatic), no cache of pools
    # between steps of a test, hand-out figures written within the request, rate limits counted
    # afresh in this process for each test.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.RINGPOOL_POOL_CACHE_SECONDS = 0
    settings.RINGPOOL_FIGURES_FLUSH_SECONDS = 0
    settings.RINGPOOL_RATE_LIMIT_URL = "local"
    clear_handout_cache()
    rate_limits_reset()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture
def demo(live_server, settings):
    """The demo data (`seed_demo`) behind a live server, for the browser tests."""

    from tests.demo import seed_demo

    # The live server speaks plain http://; production's Secure cookies would not come back.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    seed_demo()
    return live_server


@pytest.fixture
def database_down(transactional_db):
    """The real connection pointed at nothing: every query fails as with a database that is down."""
    from django.db import connections

    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        connection.settings_dict["PORT"] = "1"
    else:
        connection.settings_dict["NAME"] = "/nonexistent/ringpool/database-down.sqlite3"
    yield
    connection.close()
    connection.settings_dict.update(saved)
