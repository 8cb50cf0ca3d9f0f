"""``bkmonitor_celery_task_execute_time{task_name,queue,exception}`` for every task of an app.

The original wrapped ``app.task`` to time each task; Celery's prerun/postrun signals give the same figure for every
task, however it was declared, without touching the task classes. The labels are the original's: ``task_name`` the
task function's ``__name__`` (a cron task's is its job path with ``_`` for ``.``), ``queue`` the queue the task was
declared with (``celery`` without one), ``exception`` the class name of the exception that ended it, or ``None``.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from celery import Celery, Task
from celery.signals import task_failure, task_postrun, task_prerun

from alarm_backends.core.prometheus.metrics import CELERY_TASK_EXECUTE_TIME

_STARTED = "_bkm_started"
_EXCEPTION = "_bkm_exception"


def _queue(task: Task) -> str:
    return str(getattr(task, "queue", None) or "celery")


def _name(task: Task) -> str:
    return str(getattr(task.run, "__name__", None) or task.name)


def _prerun(sender: Task | None = None, **_: Any) -> None:
    if sender is not None:
        setattr(sender.request, _STARTED, time.perf_counter())
        setattr(sender.request, _EXCEPTION, "None")


def _failure(sender: Task | None = None, exception: BaseException | None = None, **_: Any) -> None:
    if sender is not None and exception is not None:
        setattr(sender.request, _EXCEPTION, type(exception).__name__)


def _postrun(sender: Task | None = None, **_: Any) -> None:
    if sender is None:
        return
    started = getattr(sender.request, _STARTED, None)
    if started is None:
        return
    CELERY_TASK_EXECUTE_TIME.labels(
        task_name=_name(sender), queue=_queue(sender), exception=getattr(sender.request, _EXCEPTION, "None")
    ).observe(time.perf_counter() - started)


_timed: weakref.WeakSet[Celery] = weakref.WeakSet()


def install(app: Celery) -> None:
    """Time every task of ``app`` (signals are filtered by sender app, so other apps in the process are left out)."""

    def only(handler: Any) -> Any:
        def receiver(sender: Task | None = None, **kwargs: Any) -> None:
            if sender is not None and sender.app is app:
                handler(sender=sender, **kwargs)

        return receiver

    if app in _timed:  # a second set-up of the app: a task is timed once
        return
    _timed.add(app)
    # weak=False: the closures would otherwise be collected at once.
    task_prerun.connect(only(_prerun), weak=False)
    task_failure.connect(only(_failure), weak=False)
    task_postrun.connect(only(_postrun), weak=False)
