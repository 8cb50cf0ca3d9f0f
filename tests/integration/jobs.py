"""Jobs used by the worker tests: each leaves an effect in the service DB that a test can read."""

from __future__ import annotations

import gc
import os
import time

from alarm_backends.core.storage.redis import SERVICE, get_client

EFFECT_KEY = "test.jobs.effect"


def record_effect() -> None:
    """``<pid>:<time>:<objects frozen>``: the last, the pool process's ``gc.get_freeze_count()`` (what its main
    process froze before forking it)."""
    get_client(SERVICE).rpush(EFFECT_KEY, f"{os.getpid()}:{time.time()}:{gc.get_freeze_count()}")


class JobFailedError(RuntimeError):
    pass


def boom() -> None:
    raise JobFailedError("this job always fails")


SLOW_KEY = "test.jobs.slow"


def slow() -> None:
    """Runs ``SLOW_JOB_SECONDS`` (default 5), writing ``start <task id> <time>`` and ``end <task id> <time>``."""
    from celery import current_task

    client = get_client(SERVICE)
    client.rpush(SLOW_KEY, f"start {current_task.request.id} {time.time()}")
    time.sleep(float(os.environ.get("SLOW_JOB_SECONDS", "5")))  # the job's own work, not a synchronisation
    client.rpush(SLOW_KEY, f"end {current_task.request.id} {time.time()}")


# One entry per overlap policy (an entry is a dotted path; each names the same job).
slow_allow = slow_skip = slow_buffer = slow_replace = slow


def stopped() -> None:
    """Stopped as a pool process told to terminate is (billiard's SIGTERM handler exits with SystemExit)."""
    raise SystemExit(-15)
