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


def run_job(path: str, queue: str, task_name: str | None = None) -> Any:
    """Run the job at ``path`` once, as the task ``task_name`` (default: the path) on ``queue``."""
    name = task_name or path
    logger.info("^[Cron Task](%s)", name)
    start = time.perf_counter()
    try:
        result = resolve(path)()
    except Exception as exc:
        cost = time.perf_counter() - start
        exception = type(exc).__name__
        # An unimportable path is a configuration error: its message says all, a traceback adds noise.
        logger.error("![Cron Task](%s) error: %s", name, exc, exc_info=not isinstance(exc, CronJobImportError))
        _observe(name, queue, "failed", exception, cost)
        if settings.CRON_TASK_RAISE_ERRORS or isinstance(exc, CronJobImportError):
            raise
        return None
    cost = time.perf_counter() - start
    logger.info("$[Cron Task](%s) cost: %.3fs", name, cost)
    _observe(name, queue, "success", "", cost)
    return result


def _observe(name: str, queue: str, status: str, exception: str, cost: float) -> None:
    CRON_TASK_EXECUTE_TIME.labels(task_name=name, queue=queue).observe(cost)
    CRON_TASK_EXECUTE_COUNT.labels(task_name=name, status=status, exception=exception, queue=queue).inc()
    record_run(name, queue, status, cost, exception)
