"""Start-up guards of the long-running processes (web, Celery worker, Beat) and the deploy check."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

MISSING_SECRET_KEY = (
    "SECRET_KEY is not set. With DEBUG off (production) it must come from the environment; "
    "for a local demo set DEBUG=1."
)


def require_production_settings() -> None:
    """Refuse to start a production process without its secret key or its encryption keys."""
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to read an empty one
        key = ""
    if not settings.DEBUG and not key:
        raise ImproperlyConfigured(MISSING_SECRET_KEY)
    if not settings.DEBUG:
        from accounts.secrets import _configured

        _configured()  # raises ImproperlyConfigured when RINGPOOL_ENCRYPTION_KEYS is missing or malformed


@checks.register(checks.Tags.security, deploy=True)
def secret_key_is_set(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        require_production_settings()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="ringpool.E001")]
    return []
