"""Crontab settings → periodic tasks on the backend app (shared by ``cron``, ``api_cron`` and ``report_cron``).

Each entry of the given settings is validated, filtered (``EXCLUDE_WORKER_TASKS``; ``global`` entries only in the
default cluster) and registered as a task that resolves its job lazily when it runs, on its cluster-scoped queue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from celery import Celery
from django.conf import settings

from alarm_backends.core.cluster import get_cluster
from alarm_backends.service.scheduler.crontab import (
    CronConfigError,
    CronEntry,
    effective_jitter,
    expires_for,
    make_crontab,
    parse_entries,
    select,
)
from alarm_backends.service.scheduler.periodic import periodic_task
from alarm_backends.service.scheduler.runner import CronJobImportError, run_job

logger = logging.getLogger("cron")


def make_task(app: Celery, entry: CronEntry, queue: str, name: str, expires: int, function_label: bool = False) -> Any:
    """A periodic task of ``app`` called ``name`` that runs ``entry``'s job on ``queue``; ``expires`` travels with
    the task. Its logs and metrics name the job's path (or, ``function_label``, its function) and the entry's own
    queue."""
    module, _, func_name = name.rpartition(".")
    # The entry's zone, or the default one ("": the app's).
    schedule = make_crontab(entry.cron, entry.timezone or settings.CRON_DEFAULT_TIMEZONE or None)

    def task() -> Any:
        return run_job(entry.path, entry.queue, task_name=name, function_label=function_label, schedule=schedule)

    task.__name__ = task.__qualname__ = func_name
    task.__module__ = module
    task.__doc__ = f"Runs {entry.path} ({entry.cron!r}, {entry.run_type}, from {entry.source})."
    return periodic_task(
        app,
        name=name,
        run_every=schedule,
        ignore_result=True,
        queue=queue,
        expires=expires,
        missed_run=entry.missed_run,
        jitter=effective_jitter(entry.jitter, settings.CRON_DEFAULT_JITTER, entry.cron),
        overlap=entry.overlap or settings.CRON_DEFAULT_OVERLAP,
        # An unimportable job is already logged once, clearly, by run_job: Celery logs an expected error at INFO
        # without its traceback (the task still fails).
        throws=(CronJobImportError,),
        # Bound at once, so the beat entry exists as soon as the task is registered.
        lazy=False,
    )(task)


def register(
    app: Celery, lists: Iterable[tuple[str, str]], *, keep_path: bool = False, expires: int | None = None
) -> dict[str, Any]:
    """Register every entry of the ``(queue, setting name)`` lists on ``app``.

    Tasks are named ``alarm_backends.service.scheduler.tasks.cron.<path with . → _>`` and expire after the gap to
    their next run, or — with ``keep_path`` and a fixed ``expires``, as the API and report crontabs — keep their
    job's dotted path as their name.
    """
    cluster = get_cluster()
    errors: list[CronConfigError] = []
    parsed = parse_entries([(queue, setting, getattr(settings, setting)) for queue, setting in lists], errors)
    for error in errors:
        # One line per bad entry, and the others are registered: `manage.py check` refuses it before deployment.
        logger.error("bkmonitor: %s (entry skipped)", error)
    entries = select(
        parsed,
        exclude=settings.EXCLUDE_WORKER_TASKS,
        is_default_cluster=cluster.is_default(),
    )
    tasks = {}
    for entry in entries:
        name = entry.path if keep_path else entry.task_name
        expiry = expires or expires_for(entry.cron)
        tasks[name] = make_task(app, entry, cluster.queue_name(entry.queue), name, expiry, function_label=keep_path)
    return tasks
