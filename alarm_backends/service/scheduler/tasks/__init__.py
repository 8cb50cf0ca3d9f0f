"""The periodic-task loaders; importing this package registers every crontab entry on the backend app."""

from alarm_backends.service.scheduler.tasks import api_cron, cron, report_cron

__all__ = ["api_cron", "cron", "report_cron"]
