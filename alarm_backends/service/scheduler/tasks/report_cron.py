"""``REPORT_CRONTAB`` → queue ``celery_report_cron``."""

from alarm_backends.service.scheduler.tasks.fixed import register_fixed

TASKS = register_fixed("celery_report_cron", "REPORT_CRONTAB")
