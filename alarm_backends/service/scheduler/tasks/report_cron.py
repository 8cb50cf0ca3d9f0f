"""``REPORT_CRONTAB`` → queue ``celery_report_cron``; fixed expires 300, and each task keeps its job's own name."""

from alarm_backends.service.scheduler.tasks.loader import register

TASKS = register([("celery_report_cron", "REPORT_CRONTAB")], keep_path=True, expires=300)
