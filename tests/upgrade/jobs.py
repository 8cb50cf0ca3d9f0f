"""The rolling-upgrade test's jobs, ``tests.upgrade.jobs.job00`` …: imported by this platform's workers and by the
original's (tests/upgrade/original_app.py, another virtualenv), so only the standard library, redis and celery.

Each run records, on the list ``UPGRADE_RUNS_KEY`` at ``UPGRADE_RUNS_URL``: the job, when it started, the task id
of the message it came in (a stock beat's is a uuid, this platform's ``<task>@<slot>``) and which side's worker ran
it (``UPGRADE_SIDE``). It then takes a moment, so a slot's messages are shared between both sides' workers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import redis
from celery import current_task

ENTRIES = 20
WORK_SECONDS = 0.2


def name(index: int) -> str:
    return f"job{index:02d}"


def record(job: str) -> None:
    started = time.time()
    run = {"job": job, "ts": started, "id": current_task.request.id, "side": os.environ["UPGRADE_SIDE"]}
    client = redis.Redis.from_url(os.environ["UPGRADE_RUNS_URL"])
    try:
        client.rpush(os.environ["UPGRADE_RUNS_KEY"], json.dumps(run))
    finally:
        client.close()
    time.sleep(WORK_SECONDS)  # the job's work; not synchronisation


def _job(job: str) -> Callable[[], None]:
    def run() -> None:
        record(job)

    run.__name__ = run.__qualname__ = job
    return run


for _index in range(ENTRIES):
    globals()[name(_index)] = _job(name(_index))
