"""The periodic-task loaders; importing this package registers every crontab entry on the backend app.

``perform_sharding_task`` is here, and ``task_duration`` in ``tasks.cron``, where the original's product code imports
them from.
"""

from alarm_backends.service.scheduler.tasks import api_cron, cron, report_cron
from alarm_backends.service.scheduler.tasks.sharding import perform_sharding_task

__all__ = ["api_cron", "cron", "perform_sharding_task", "report_cron"]
