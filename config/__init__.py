from config import startup  # noqa: F401  (registers the deploy check of production settings)
from config.celery import app as celery_app

__all__ = ("celery_app",)
