"""``API_CRONTAB`` → queue ``celery_api_cron`` (a gevent worker: these jobs mostly wait on I/O); fixed expires 300,
and each task keeps its job's own dotted name."""

from alarm_backends.service.scheduler.tasks.loader import register

TASKS = register([("celery_api_cron", "API_CRONTAB")], keep_path=True, expires=300)
