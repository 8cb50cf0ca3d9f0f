"""The backend Celery app (``Celery("backend")``): ``celery -A alarm_backends.service.scheduler.app worker|beat``.

Importing it sets Django up, configures Celery from settings (``config.py`` beside this file) and registers every
periodic task of the crontab lists, so beat and every worker agree on the schedule.
"""

from __future__ import annotations

import logging.config
import os
from typing import Any

import django
from celery import Celery, Task
from celery.signals import beat_init, celeryd_after_setup, setup_logging
from django.core.exceptions import ImproperlyConfigured

from config.tools.validation import refuse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
try:
    django.setup()
except ImproperlyConfigured as exc:
    # Settings errors name their variable (config.tools.validation): one line each and exit status 2, so
    # supervisord's log shows the cause and the program goes FATAL instead of restarting in a loop.
    refuse(str(exc))

import billiard
from django.conf import settings

from alarm_backends.core import dynamic_settings
from alarm_backends.core.cluster import get_cluster, queue_name_problem
from alarm_backends.core.prometheus import celery_timer
from alarm_backends.service.scheduler import dedupe, refused
from alarm_backends.service.scheduler.config import backend_config
from patches import kombu_redis
from patches import redbeat as patched_redbeat
from patches.redbeat.publisher import DEADLINE_HEADER

# The original's settings edited at run time (its hack_settings over GlobalConfig), before anything reads them.
if settings.USE_DYNAMIC_SETTINGS:
    dynamic_settings.install()

app = Celery("backend")
try:
    _cluster = get_cluster()
    app.conf.update(backend_config(settings, billiard.cpu_count(), _cluster.queue_name, _cluster.name))
except ValueError as exc:  # a bad cluster name, serializer or broker backend: the message names it
    refuse(str(exc))
celery_timer.install(app)
refused.install(app)
# `celery beat -S redbeat.RedBeatScheduler` (the original's command line) gets the patched scheduler.
patched_redbeat.install()
# A Redis broker puts back a message a worker was taking when the connection broke, instead of losing it.
kombu_redis.install()


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
    # The entry's missed-run policy for the patched scheduler (None: the scheduler's default).
    missed_run: dict[str, Any] | None = None
    # The patched beat then sends the run's deadline on the Redis clock (its bkm_deadline header) instead of
    # Celery's `expires`, which each worker compares with its own clock; the claim below checks it on Redis's.
    # CRON_EXPIRES_CLOCK="worker" restores Celery's header.
    expires_on_redis_clock = settings.CRON_EXPIRES_CLOCK == "redis"

    def __init__(self) -> None:
        if not hasattr(self, "run_every"):
            raise NotImplementedError("Periodic tasks must have a run_every attribute")
        super().__init__()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Deduplicate by the slot id the patched beat gives each run (see dedupe.py).
        task_id = self.request.id
        if not dedupe.is_scheduled_id(task_id):
            return super().__call__(*args, **kwargs)
        ttl = int(self.expires) if isinstance(self.expires, int | float) else None
        delivery = self.request.delivery_info or {}
        deadline = getattr(self.request, DEADLINE_HEADER, None)
        if not dedupe.claim(self.name, task_id, ttl, bool(delivery.get("redelivered")), deadline):
            return None
        try:
            return super().__call__(*args, **kwargs)
        finally:
            dedupe.finish(task_id, ttl)

    @classmethod
    def on_bound(cls, app: Celery) -> None:
        entry = {
            "task": cls.name,
            "schedule": cls.run_every,
            "args": (),
            "kwargs": {},
            "options": cls.options or {},
            "relative": cls.relative,
        }
        if cls.missed_run is not None:
            entry["missed_run"] = cls.missed_run
        app.conf.beat_schedule[cls.name] = entry


def periodic_task(**options: Any) -> Any:
    """``app.task(base=PeriodicTask, shared=False, **options)``; ``run_every`` is required.

    Not shared: a shared task binds to every Celery app of the process, and its ``on_bound`` would add the backend's
    crontabs to the SaaS app's ``beat_schedule`` too (both apps load in one process through Django's checks), so the
    SaaS beat would publish every backend crontab a second time under task ids the workers cannot dedupe.
    """
    return app.task(base=PeriodicTask, shared=False, **options)


@setup_logging.connect
def _setup_logging(**_: object) -> None:
    os.makedirs(settings.LOG_PATH, exist_ok=True)
    logging.config.dictConfig(settings.LOGGING)


@celeryd_after_setup.connect
def _refuse_bad_queue_names(sender: str, instance: Any, **_: object) -> None:
    """A worker asked (``-Q``) for a queue whose name the platform never uses logs one error naming it and does not
    consume it; its other queues run as usual."""
    queues = instance.app.amqp.queues
    for name in list(queues.consume_from or {}):
        problem = queue_name_problem(name)
        if problem:
            logging.getLogger("celery.worker").error("bkmonitor: not consuming queue %r: %s", name, problem)
            queues.deselect([name])


@beat_init.connect
def _close_old_connections(**_: object) -> None:
    from django.db import close_old_connections

    close_old_connections()


# Registration at import time, as the original: beat and every worker run the same loops.
from alarm_backends.service.scheduler.crontab import CronConfigError  # noqa: E402

try:
    from alarm_backends.service.scheduler import tasks  # noqa: F401
except CronConfigError as exc:
    refuse(str(exc))

# The product's task modules, as the original discovered them; lazily, when a worker or beat starts.
from alarm_backends.service.scheduler.discovery import discover_packages  # noqa: E402

app.autodiscover_tasks(lambda: discover_packages(settings.TASK_ROOT_MODULES, settings.INSTALLED_APPS))
