"""Running one cron job: lazy resolution of its dotted path, the ``^``/``$``/``!`` log lines, metrics, run log.

The path is resolved when the task runs, not at start-up, so a job that fails to import fails only its own task.
Unlike the original, that failure is logged and counted like any other job error (the original raised it outside
its timing wrapper, so it appeared in no metric).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.utils.module_loading import import_string

from alarm_backends.core.prometheus.agg_gateway import push_run
from alarm_backends.core.prometheus.metrics import (
    CRON_TASK_EXECUTE_COUNT,
    CRON_TASK_EXECUTE_TIME,
    CRON_TASK_LAST_RUN,
    CRON_TASK_NEXT_DUE,
)
from alarm_backends.core.runlog import record_run
from patches.redbeat.policy import NEVER, bind_clock, from_epoch, next_due

logger = logging.getLogger("cron")
T = TypeVar("T")


class CronJobImportError(ImportError):
    """A crontab entry's dotted path names nothing that can be run."""


def resolve(path: str) -> Callable[[], Any]:
    """A function path → the function; a module path → its ``main`` (the original's ``_get_func`` rule)."""
    try:
        target = import_string(path)
    except ImportError as as_attribute:
        try:
            target = importlib.import_module(path)
        except ImportError as as_module:
            # Say what is really wrong: a path that names nothing, or a module that exists but fails to import.
            missing = isinstance(as_module, ModuleNotFoundError) and path.startswith(as_module.name or "\0")
            cause = as_attribute if missing else as_module
            raise CronJobImportError(f"cron job {path!r} cannot be imported: {cause}") from as_module
    func = getattr(target, "main", target)
    if not callable(func):
        raise CronJobImportError(f"cron job {path!r} is neither a function nor a module with main()")
    return func


@dataclass
class _Outcome:
    error: BaseException | None = None


def due_after(schedule: Any, now: float) -> float | None:
    """When ``schedule`` (a Celery schedule whose clock reads ``now``) fires next after ``now``, epoch seconds; None
    if never. The scheduler's own computation (``patches.redbeat.policy.next_due``)."""
    # On a copy whose clock reads ``now``: Celery measures what remains from its own now() (the worker's clock, read
    # a moment later), and the task's schedule is shared, so it keeps its own clock.
    fixed = bind_clock(copy.copy(schedule), lambda: from_epoch(now))
    due = next_due(fixed, from_epoch(now), now)
    return None if due == NEVER else due


@contextlib.contextmanager
def _observed(label: str, queue: str, task: str | None = None, schedule: Any = None) -> Iterator[_Outcome]:
    """The original's ``task_duration`` around the body: ``^``/``!``/``$`` lines, both metrics, and (``task``) the
    run log. An exception of the body is logged, counted and kept in the outcome, not raised. When the run ended
    is a gauge too, and with its ``schedule`` when it is due next, for the alert on a job that stopped running."""
    outcome = _Outcome()
    logger.info("^[Cron Task](%s)", label)
    start = time.perf_counter()
    try:
        yield outcome
    except Exception as exc:
        outcome.error = exc
        # An unimportable path is a configuration error: its message says all, a traceback adds noise.
        logger.error("![Cron Task](%s) error: %s", label, exc, exc_info=not isinstance(exc, CronJobImportError))
    except BaseException as exc:
        # The run was stopped, not finished: SystemExit from a pool process told to terminate (a replace of the
        # overlap policy, `celery control revoke --terminate`, a worker's shutdown). It goes on up, and is logged and
        # counted as what it is; it used to be counted as a success.
        outcome.error = exc
        logger.error("![Cron Task](%s) stopped: %s", label, type(exc).__name__)
        raise
    finally:
        cost = time.perf_counter() - start
        logger.info("$[Cron Task](%s) cost: %s", label, cost)
        error = outcome.error
        # The original's labels: the exception as its class name, "None" without one (prometheus_client's str()).
        exception = type(error).__name__ if error is not None else "None"
        status = "failed" if error is not None else "success"
        CRON_TASK_EXECUTE_TIME.labels(task_name=label, queue=queue).observe(cost)
        CRON_TASK_EXECUTE_COUNT.labels(task_name=label, status=status, exception=exception, queue=queue).inc()
        CRON_TASK_LAST_RUN.labels(task_name=label, queue=queue).set(time.time())
        due = due_after(schedule, time.time()) if schedule is not None else None
        if due is not None:
            CRON_TASK_NEXT_DUE.labels(task_name=label, queue=queue).set(due)
        push_run(settings, label, queue, status, exception, cost)  # the aggregation gateway, when configured
        if task is not None:
            record_run(task, queue, status, cost, exception if error is not None else "")


def task_duration(
    task_name: str, queue_name: str | None = None
) -> Callable[[Callable[..., T]], Callable[..., T | None]]:
    """The original's decorator (its ``service/scheduler/tasks/cron.py``), for product code that times its own jobs
    with it: logs and metrics under ``task_name`` and ``queue_name`` (``None`` without one, as the original's
    label read), and an exception logged, counted and swallowed (the call returns None), as there."""

    def wrapper(func: Callable[..., T]) -> Callable[..., T | None]:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> T | None:
            result = None
            with _observed(task_name, str(queue_name)):
                result = func(*args, **kwargs)
            return result

        return inner

    return wrapper


def run_job(
    path: str, queue: str, task_name: str | None = None, *, function_label: bool = False, schedule: Any = None
) -> Any:
    """Run the job at ``path`` once, as the task ``task_name`` (default: the path) consuming ``queue``.

    Logs and metrics name the job as the original's ``task_duration`` did, so dashboards, alerts and log searches
    keep working: by its dotted path (``cron.py``), or with ``function_label`` by its function's ``__name__``
    (``api_cron.py``, ``report_cron.py``), with the queue as configured (never a cluster's prefix), ``exception``
    the exception's class name or ``None``, and a ``$[Cron Task](…) cost: <seconds>`` line after every run, failed
    or not. The run log keeps the task's own name, which ``cron_report`` groups by.
    """
    func: Callable[[], Any] | None = None
    unresolved: CronJobImportError | None = None
    try:
        func = resolve(path)
    except CronJobImportError as exc:
        unresolved = exc
    label = (getattr(func, "__name__", None) or path.rpartition(".")[2]) if function_label else path
    result = None
    with _observed(label, queue, task_name or path, schedule) as outcome:
        if func is None:
            assert unresolved is not None
            raise unresolved
        result = func()
    error = outcome.error
    if error is not None and (settings.CRON_TASK_RAISE_ERRORS or isinstance(error, CronJobImportError)):
        raise error
    return result
