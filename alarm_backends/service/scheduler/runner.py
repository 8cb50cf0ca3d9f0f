"""Running one cron job: lazy resolution of its dotted path, the ``^``/``$``/``!`` log lines, metrics, run log.

The path is resolved when the task runs, not at start-up, so a job that fails to import fails only its own task.
Unlike the original, that failure is logged and counted like any other job error (the original raised it outside
its timing wrapper, so it appeared in no metric).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from alarm_backends.core.prometheus.metrics import CRON_TASK_EXECUTE_COUNT, CRON_TASK_EXECUTE_TIME
from alarm_backends.core.runlog import record_run

logger = logging.getLogger("cron")


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


def run_job(path: str, queue: str, task_name: str | None = None, *, function_label: bool = False) -> Any:
    """Run the job at ``path`` once, as the task ``task_name`` (default: the path) consuming ``queue``.

    Logs and metrics name the job as the original's ``task_duration`` did, so dashboards, alerts and log searches
    keep working: by its dotted path (``cron.py``), or with ``function_label`` by its function's ``__name__``
    (``api_cron.py``, ``report_cron.py``), with the queue as configured (never a cluster's prefix), ``exception``
    the exception's class name or ``None``, and a ``$[Cron Task](…) cost: <seconds>`` line after every run, failed
    or not. The run log keeps the task's own name, which ``cron_report`` groups by.
    """
    start = time.perf_counter()
    func: Callable[[], Any] | None = None
    try:
        func = resolve(path)
    except CronJobImportError as exc:
        error: Exception | None = exc
    else:
        error = None
    label = (getattr(func, "__name__", None) or path.rpartition(".")[2]) if function_label else path
    logger.info("^[Cron Task](%s)", label)
    result = None
    try:
        if error is not None:
            raise error
        assert func is not None
        result = func()
    except Exception as exc:
        error = exc
        # An unimportable path is a configuration error: its message says all, a traceback adds noise.
        logger.error("![Cron Task](%s) error: %s", label, exc, exc_info=not isinstance(exc, CronJobImportError))
    finally:
        cost = time.perf_counter() - start
        logger.info("$[Cron Task](%s) cost: %s", label, cost)
        _observe(label, task_name or path, queue, error, cost)
    if error is not None and (settings.CRON_TASK_RAISE_ERRORS or isinstance(error, CronJobImportError)):
        raise error
    return result


def _observe(label: str, task: str, queue: str, error: Exception | None, cost: float) -> None:
    # The original's labels: the exception as its class name, "None" without one (prometheus_client's str(None)).
    exception = type(error).__name__ if error is not None else "None"
    status = "failed" if error is not None else "success"
    CRON_TASK_EXECUTE_TIME.labels(task_name=label, queue=queue).observe(cost)
    CRON_TASK_EXECUTE_COUNT.labels(task_name=label, status=status, exception=exception, queue=queue).inc()
    record_run(task, queue, status, cost, exception if error is not None else "")
