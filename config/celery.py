"""The Celery app: settings from Django's settings (namespace CELERY), tasks found in every app."""

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("ringpool")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def refuse_to_start_without_production_settings(**kwargs: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from config.startup import require_production_settings

    try:
        require_production_settings()
    except ImproperlyConfigured as error:
        # Celery logs and swallows exceptions from signal handlers; SystemExit does stop the process.
        raise SystemExit(f"Refusing to start: {error}") from error
