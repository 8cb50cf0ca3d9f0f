"""``REPORT_CRONTAB`` → queue ``celery_report_cron``; fixed expires 300, and each task keeps its job's own name."""

from typing import Any

from celery import Celery

from alarm_backends.service.scheduler.tasks import loader


def register(app: Celery) -> dict[str, Any]:
    return loader.register(app, [("celery_report_cron", "REPORT_CRONTAB")], keep_path=True, expires=300)
