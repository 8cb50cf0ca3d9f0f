"""The periodic-task loaders of the crontab lists; ``register_all`` puts every entry on an app (the backend app
calls it once its configuration is read).

``perform_sharding_task`` is here, and ``task_duration`` in ``tasks.cron``, where the original's product code imports
them from.
"""

from typing import Any

from celery import Celery

from alarm_backends.service.scheduler.tasks import api_cron, cron, report_cron
from alarm_backends.service.scheduler.tasks.sharding import perform_sharding_task

__all__ = ["api_cron", "cron", "perform_sharding_task", "register_all", "report_cron"]


def register_all(app: Celery) -> dict[str, Any]:
    """Every crontab list's tasks on ``app``, by name. Raises CronConfigError for lists that cannot be read."""
    return {**cron.register(app), **api_cron.register(app), **report_cron.register(app)}
