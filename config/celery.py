"""The Celery app: settings from Django's settings (namespace CELERY), tasks found in every app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("ringpool")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
