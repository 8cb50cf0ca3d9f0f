"""The crontab loader: every ``(path, cron, run_type)`` of the role's lists becomes a periodic task.

* ``DEFAULT_CRONTAB`` → queue ``celery_cron``, ``ACTION_TASK_CRONTAB`` → ``celery_action_cron``,
  ``LONG_TASK_CRONTAB`` → ``celery_long_task_cron`` (prefixed ``<cluster>-`` outside the default cluster);
* paths in ``EXCLUDE_WORKER_TASKS`` are skipped; ``global`` entries exist only in the default cluster;
* the task is named ``alarm_backends.service.scheduler.tasks.cron.<path with . → _>``, carries its queue and
  ``expires`` (see ``crontab.expires_for``) and resolves the job lazily when it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings

from alarm_backends.core.cluster import get_cluster
from alarm_backends.service.scheduler.app import periodic_task
from alarm_backends.service.scheduler.crontab import (
    CronEntry,
    expires_for,
    make_crontab,
    parse_entries,
    queue_lists,
    select,
)
from alarm_backends.service.scheduler.runner import run_job

QUEUE_SETTINGS = {
    "celery_cron": "DEFAULT_CRONTAB",
    "celery_action_cron": "ACTION_TASK_CRONTAB",
    "celery_long_task_cron": "LONG_TASK_CRONTAB",
}


def _make_task(entry: CronEntry, queue: str) -> Any:
    func_name = entry.path.replace(".", "_")

    def task() -> Any:
        return run_job(entry.path, queue, task_name=entry.task_name)

    task.__name__ = task.__qualname__ = func_name
    task.__module__ = __name__
    task.__doc__ = f"Runs {entry.path} ({entry.cron!r}, {entry.run_type}, from {entry.source})."
    return periodic_task(
        run_every=make_crontab(entry.cron),
        ignore_result=True,
        queue=queue,
        expires=expires_for(entry.cron),
        missed_run=entry.missed_run,
        # Bound at once, so the beat entry exists as soon as this module is imported.
        lazy=False,
    )(task)


def register(entries: Iterable[CronEntry]) -> dict[str, Any]:
    cluster = get_cluster()
    registered = {}
    for entry in entries:
        registered[entry.task_name] = _make_task(entry, cluster.queue_name(entry.queue))
    return registered


ENTRIES = select(
    parse_entries(queue_lists(settings, QUEUE_SETTINGS)),
    exclude=settings.EXCLUDE_WORKER_TASKS,
    is_default_cluster=get_cluster().is_default(),
)
TASKS = register(ENTRIES)
