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
