"""The SaaS Celery app (``Celery("proj")``), the app behind ``manage.py celery``."""

from config.celery.celery import app

__all__ = ["app"]
