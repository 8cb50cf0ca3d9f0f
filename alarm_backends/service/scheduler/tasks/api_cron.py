"""``API_CRONTAB`` → queue ``celery_api_cron`` (a gevent worker: these jobs mostly wait on I/O)."""

from alarm_backends.service.scheduler.tasks.fixed import register_fixed

TASKS = register_fixed("celery_api_cron", "API_CRONTAB")
