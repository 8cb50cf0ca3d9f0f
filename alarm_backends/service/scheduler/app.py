"""The backend Celery app (``Celery("backend")``): ``celery -A alarm_backends.service.scheduler.app worker|beat``.

Importing this module creates the app and connects its signal receivers; it does no I/O and cannot exit. The app
sets itself up when its configuration is first read (a worker or beat starting, a command reading its schedule), in
``on_after_configure``, before the value read is returned:

1. ``configure``: Django set up, the settings edited at run time installed, the cluster looked up, the Celery
   settings derived (``config.py``) and the platform's patches installed; the settings go into the app's
   configuration as changes (``celery report`` shows them), except those set on the app before (a test's);
2. ``register``: every periodic task of the crontab lists, so beat and every worker agree on the schedule.

Settings the platform refuses stop the process there, with exit status 2 and one line naming the culprit
(``config.tools.validation.refuse``): beat and workers must not run half-configured, and supervisord then marks the
program FATAL instead of restarting it in a loop.
"""

from __future__ import annotations

import gc
import logging.config
import os
from typing import Any

import billiard
import django
from celery import Celery
from celery.signals import beat_init, celeryd_after_setup, setup_logging, worker_before_create_process
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from alarm_backends.core import dynamic_settings
from alarm_backends.core.cluster import get_cluster, queue_name_problem
from alarm_backends.core.prometheus import celery_timer
from alarm_backends.service.scheduler import refused, tasks
from alarm_backends.service.scheduler.config import backend_config
from alarm_backends.service.scheduler.crontab import CronConfigError
from alarm_backends.service.scheduler.discovery import discover_packages
from alarm_backends.service.scheduler.periodic import PeriodicTask
from alarm_backends.service.scheduler.periodic import periodic_task as _periodic_task
from config.tools.validation import refuse
from patches import kombu_redis
from patches import redbeat as patched_redbeat

__all__ = ["PeriodicTask", "app", "configure", "periodic_task", "register"]

# Celery's Django fix-up (connection handling in workers) is installed when the app is created with this set.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")


def configure(app: Celery) -> dict[str, Any]:
    """The app's Celery settings, from Django settings; installs what must be in place before any of them is used."""
    if not apps.ready:
        try:
            django.setup()
        except ImproperlyConfigured as exc:
            # Settings errors name their variable (config.tools.validation).
            refuse(str(exc))
    # The original's settings edited at run time (its hack_settings over GlobalConfig), before anything reads them.
    if settings.USE_DYNAMIC_SETTINGS:
        dynamic_settings.install()
    try:
        cluster = get_cluster()
        conf = backend_config(settings, billiard.cpu_count(), cluster.queue_name, cluster.name)
    except ValueError as exc:  # a bad cluster name, serializer or broker backend: the message names it
        refuse(str(exc))
    celery_timer.install(app)
    refused.install(app)
    # `celery beat -S redbeat.RedBeatScheduler` (the original's command line) gets the patched scheduler.
    patched_redbeat.install()
    # A Redis broker URL gets the reliable transport (no message lost as a worker dies or its connection breaks), or
    # kombu's own with BROKER_REDIS_TRANSPORT = "kombu".
    kombu_redis.install(settings.BROKER_REDIS_TRANSPORT)
    return conf


def register(app: Celery) -> None:
    """Every periodic task of the crontab lists, on ``app``."""
    try:
        tasks.register_all(app)
    except CronConfigError as exc:
        refuse(str(exc))


def _set_up(sender: Celery, **_: object) -> None:
    derived = configure(sender)
    sender.conf.update({name: value for name, value in derived.items() if name not in sender.conf.changes})
    register(sender)


app = Celery("backend")
app.on_after_configure.connect(_set_up, sender=app, weak=False)
# The product's task modules, as the original discovered them: imported when a worker or beat starts.
app.autodiscover_tasks(lambda: discover_packages(settings.TASK_ROOT_MODULES, settings.INSTALLED_APPS))


def periodic_task(**options: Any) -> Any:
    """``app.task(base=PeriodicTask, shared=False, **options)`` on the backend app; ``run_every`` is required."""
    return _periodic_task(app, **options)


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


@worker_before_create_process.connect
def _freeze_heap(**_: object) -> None:
    """Before the worker's main process forks its first pool process, what it holds then (Django, the jobs, the app)
    leaves the garbage collector's reach, as Python's ``gc.freeze`` documentation advises for fork without exec: the
    pool processes' collections never write to those objects, so their pages stay shared instead of being copied
    into each new pool process (one every ``worker_max_tasks_per_child`` runs), and the full collection Celery runs
    before every fork (celery#2927) walks only what came after. Once only: a freeze at every fork would make
    immortal whatever was alive at that moment and died later in a reference cycle (in-flight requests), a leak
    that grows with every fork. Collected first, so the start-up's own garbage is not frozen. Measured: worker CPU
    per run 772 -> about 700 µs (bench/worker_cost.py, README: Benchmarks)."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


@beat_init.connect
def _close_old_connections(**_: object) -> None:
    from django.db import close_old_connections

    close_old_connections()
