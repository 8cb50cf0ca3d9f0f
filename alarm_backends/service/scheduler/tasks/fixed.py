"""Shared loader for the API and report crontabs: tasks keep their job's own dotted name and expire after 300 s."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from alarm_backends.core.cluster import get_cluster
from alarm_backends.service.scheduler.app import periodic_task
from alarm_backends.service.scheduler.crontab import CronEntry, make_crontab, parse_entries, select
from alarm_backends.service.scheduler.runner import run_job

FIXED_EXPIRES = 300


def _make_task(entry: CronEntry, queue: str) -> Any:
    module, _, func_name = entry.path.rpartition(".")

    def task() -> Any:
        return run_job(entry.path, queue)

    task.__name__ = task.__qualname__ = func_name
    task.__module__ = module
    task.__doc__ = f"Runs {entry.path} ({entry.cron!r}, {entry.run_type}, from {entry.source})."
    return periodic_task(
        name=entry.path,
        run_every=make_crontab(entry.cron),
        ignore_result=True,
        queue=queue,
        expires=FIXED_EXPIRES,
        missed_run=entry.missed_run,
        lazy=False,
    )(task)


def register_fixed(queue: str, setting: str) -> dict[str, Any]:
    cluster = get_cluster()
    entries = select(
        parse_entries([(queue, setting, getattr(settings, setting))]),
        exclude=settings.EXCLUDE_WORKER_TASKS,
        is_default_cluster=cluster.is_default(),
    )
    return {entry.path: _make_task(entry, cluster.queue_name(queue)) for entry in entries}
