"""``API_CRONTAB`` → queue ``celery_api_cron`` (a gevent worker: these jobs mostly wait on I/O); fixed expires 300,
and each task keeps its job's own dotted name."""

from typing import Any

from celery import Celery

from alarm_backends.service.scheduler.tasks import loader


def register(app: Celery) -> dict[str, Any]:
    return loader.register(app, [("celery_api_cron", "API_CRONTAB")], keep_path=True, expires=300)
