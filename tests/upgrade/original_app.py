"""The original's backend app as its hosts run it, for the rolling-upgrade test: ``<original venv>/bin/celery -A
tests.upgrade.original_app beat -S redbeat.RedBeatScheduler`` or ``… worker``, with celery 5.4.0, kombu 5.5.3,
redis-py 4.6.0 and stock celery-redbeat 2.2.0 (the virtualenv tests/upstream/original.py builds). Nothing of this
platform is imported: this module stands for the original's service/scheduler/app.py and tasks/cron.py.

* Configured as the original configures ``Celery("backend")`` (pickle only, late acks, the ``monitor`` exchange and
  queues, UTC, the default ``redbeat:`` prefix), on the broker and store the test names. Two numbers are the
  test's, so a failover takes seconds instead of five minutes: ``beat_max_loop_interval`` and
  ``redbeat_lock_timeout`` (60 and 300 there). A Redis result backend as there (``ORIGINAL_RESULT_BACKEND``):
  without one Celery's beat adds a ``celery.backend_cleanup`` entry the original's schedule does not have.
* Each ``[path, cron, run_type]`` of ``ORIGINAL_CRONTABS`` (``{queue: [entries]}``, the lists the platform reads
  as ``DEFAULT_CRONTAB`` & co.) becomes a task named ``alarm_backends.service.scheduler.tasks.cron.<path with . →
  _>`` on its queue, ``expires`` = the period clamped to 5 min to 1 h, ``ignore_result``, in ``beat_schedule`` with
  empty options, as the original's ``PeriodicTask.on_bound`` puts it there.
* The original's local redbeat patch is not modelled: on a standalone Redis it changes neither what is stored nor
  when (two HGETs instead of a pipeline in ``from_key``, a Sentinel-aware client, the logger's name).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from kombu import Exchange, Queue

TASK_PREFIX = "alarm_backends.service.scheduler.tasks.cron."

app = Celery("backend")
app.conf.update(
    worker_max_tasks_per_child=1000,
    task_serializer="pickle",
    accept_content=["pickle"],
    result_serializer="pickle",
    task_acks_late=True,
    task_default_exchange="monitor",
    task_default_queue="monitor",
    task_default_routing_key="monitor",
    task_queues=[
        Queue("monitor", Exchange("monitor"), routing_key="monitor"),
        Queue(
            "celery_llm_task",
            Exchange("monitor"),
            routing_key="celery_llm_task",
            queue_arguments={"x-message-ttl": 600000, "x-max-length": 1000},
        ),
    ],
    broker_url=os.environ["ORIGINAL_BROKER_URL"],
    result_backend=os.environ["ORIGINAL_RESULT_BACKEND"],
    redbeat_redis_url=os.environ["ORIGINAL_REDBEAT_URL"],
    beat_max_loop_interval=float(os.environ["ORIGINAL_LOOP_INTERVAL"]),
    redbeat_lock_timeout=int(os.environ["ORIGINAL_LOCK_TIMEOUT"]),
)


class PeriodicTask(Task):
    """Puts itself in ``beat_schedule`` when bound, as the original's compatibility class does."""

    abstract = True
    ignore_result = True
    relative = False
    options = None
    run_every: crontab

    @classmethod
    def on_bound(cls, bound: Celery) -> None:
        # Its own module stands for the original here (another virtualenv: nothing of the platform is importable).
        entry = dict(task=cls.name, schedule=cls.run_every, args=(), kwargs={}, options=cls.options or {})
        bound.conf.beat_schedule[cls.name] = entry | {"relative": cls.relative}


def period(schedule: crontab) -> int:
    """Seconds between the schedule's next two slots."""
    now = schedule.now()
    first = now + schedule.remaining_estimate(now)
    second = first + schedule.remaining_estimate(first + dt.timedelta(minutes=1))
    return int((second - first).total_seconds())


def resolve(path: str) -> Callable[[], Any]:
    """A module's ``main`` or the function the path names, resolved when the task runs."""
    try:
        target: Any = importlib.import_module(path)
    except ImportError:
        module, _, attribute = path.rpartition(".")
        target = getattr(importlib.import_module(module), attribute)
    return getattr(target, "main", target)


def job_task(path: str) -> Callable[[], Any]:
    def run() -> Any:
        return resolve(path)()

    run.__name__ = path.replace(".", "_")
    return run


for queue, entries in json.loads(os.environ["ORIGINAL_CRONTABS"]).items():
    for path, cron, _run_type in entries:
        schedule = crontab(*cron.split())
        app.task(
            base=PeriodicTask,
            name=TASK_PREFIX + path.replace(".", "_"),
            run_every=schedule,
            ignore_result=True,
            queue=queue,
            expires=min(3600, max(period(schedule), 300)),
        )(job_task(path))
