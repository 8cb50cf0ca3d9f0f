"""The crontab loader: every ``(path, cron, run_type)`` of the role's lists becomes a periodic task.

* ``DEFAULT_CRONTAB`` → queue ``celery_cron``, ``ACTION_TASK_CRONTAB`` → ``celery_action_cron``,
  ``LONG_TASK_CRONTAB`` → ``celery_long_task_cron`` (prefixed ``<cluster>-`` outside the default cluster);
* paths in ``EXCLUDE_WORKER_TASKS`` are skipped; ``global`` entries exist only in the default cluster;
* the task is named ``alarm_backends.service.scheduler.tasks.cron.<path with . → _>``, carries its queue and
  ``expires`` (see ``crontab.expires_for``) and resolves the job lazily when it runs.

The backend app calls ``register`` once its configuration is read (the original registered at import).
"""

from typing import Any

from celery import Celery

from alarm_backends.service.scheduler.runner import task_duration
from alarm_backends.service.scheduler.tasks import loader

__all__ = ["QUEUE_SETTINGS", "register", "task_duration"]  # task_duration: the original's, imported by product code

QUEUE_SETTINGS = {
    "celery_cron": "DEFAULT_CRONTAB",
    "celery_action_cron": "ACTION_TASK_CRONTAB",
    "celery_long_task_cron": "LONG_TASK_CRONTAB",
}


def register(app: Celery) -> dict[str, Any]:
    return loader.register(app, QUEUE_SETTINGS.items())
