"""The backend Celery app (``Celery("backend")``): ``celery -A alarm_backends.service.scheduler.app worker|beat``.

Importing it sets Django up, configures Celery from settings (``config.py`` beside this file) and registers every
periodic task of the crontab lists, so beat and every worker agree on the schedule.
"""

from __future__ import annotations

import logging.config
import os
import sys
from typing import Any

import django
from celery import Celery, Task
from celery.signals import beat_init, setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
try:
    django.setup()
except Exception as exc:  # settings errors already name the variable: say it in one line and stop
    sys.exit(f"bkmonitor: settings failed to load: {exc}")

import billiard
from django.conf import settings

from alarm_backends.core.cluster import get_cluster
from alarm_backends.core.prometheus import celery_timer
from alarm_backends.service.scheduler.config import backend_config

app = Celery("backend")
try:
    app.conf.update(backend_config(settings, billiard.cpu_count(), get_cluster().queue_name))
except ValueError as exc:  # a bad cluster name, serializer or broker backend: the message names it
    sys.exit(f"bkmonitor: {exc}")
celery_timer.install(app)


class PeriodicTask(Task):
    """A task that puts itself in ``beat_schedule`` when bound to the app (Celery 3's ``PeriodicTask``).

    The entry's ``options`` stay empty: queue and expires are attributes of the task, and ``apply_async`` takes
    them from there, as in the original.
    """

    abstract = True
    ignore_result = True
    relative = False
    options: dict[str, Any] | None = None
    compat = True
    run_every: Any

    def __init__(self) -> None:
        if not hasattr(self, "run_every"):
            raise NotImplementedError("Periodic tasks must have a run_every attribute")
        super().__init__()

    @classmethod
    def on_bound(cls, app: Celery) -> None:
        app.conf.beat_schedule[cls.name] = {
            "task": cls.name,
            "schedule": cls.run_every,
            "args": (),
            "kwargs": {},
            "options": cls.options or {},
            "relative": cls.relative,
        }


def periodic_task(**options: Any) -> Any:
    """``app.task(base=PeriodicTask, **options)``; ``run_every`` is required."""
    return app.task(base=PeriodicTask, **options)


@setup_logging.connect
def _setup_logging(**_: object) -> None:
    os.makedirs(settings.LOG_PATH, exist_ok=True)
    logging.config.dictConfig(settings.LOGGING)


@beat_init.connect
def _close_old_connections(**_: object) -> None:
    from django.db import close_old_connections

    close_old_connections()


# Registration at import time, as the original: beat and every worker run the same loops.
from alarm_backends.service.scheduler.crontab import CronConfigError  # noqa: E402

try:
    from alarm_backends.service.scheduler import tasks  # noqa: F401
except CronConfigError as exc:
    sys.exit(f"bkmonitor: {exc}")
