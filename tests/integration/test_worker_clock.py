"""A worker whose wall clock is ten minutes off Redis's runs every timely scheduled run once, and no late one.

The beat stamps a run's deadline on the Redis server's clock. Sent as Celery's ``expires`` header, each worker
compared it with its own clock: a worker 600 s ahead revoked every run (4 of 4, none ran), one 600 s behind would
run a run that sat in the queue past its expiry. Now the deadline travels in the ``bkm_deadline`` header and the
worker's claim of the slot compares it with Redis's ``TIME``. The worker runs under libfaketime (``tests/chaos/skew``):
every wall-clock read of its process is off, its monotonic clock is not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from alarm_backends.core.storage.redis import SERVICE, get_client
from patches.redbeat.publisher import BatchPublisher, build_template, open_producer
from tests.chaos.skew import skewed_or_skip
from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_DB_PLAN
from tests.integration.conftest import Worker, wait_for
from tests.integration.jobs import EFFECT_KEY

pytestmark = [pytest.mark.redis, pytest.mark.slow]

RECORD = "alarm_backends.service.scheduler.tasks.cron.tests_integration_jobs_record_effect"
EXPIRES = 300.0  # a minutely cron's


@pytest.mark.timeout(180)
@pytest.mark.parametrize("offset", [pytest.param(600, id="ahead"), pytest.param(-600, id="behind")])
def test_timely_runs_run_once_and_late_ones_expire_on_the_redis_clock(
    redis_dbs: None, start_worker: Callable[..., Worker], offset: int
) -> None:
    from alarm_backends.service.scheduler.app import app

    env = skewed_or_skip(offset, f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB_PLAN['service']}")
    worker = start_worker(**env)
    # The message the patched beat sends for a cron task (a PeriodicTask: expires on the Redis clock).
    template = dataclasses.replace(build_template(app, RECORD, (), {}, {"queue": "celery_cron"}),
                                   expires=EXPIRES, deadline_header=True)  # fmt: skip
    service = get_client(SERVICE)
    seconds, micros = service.time()
    now = seconds + micros / 1e6
    timely, late = f"{RECORD}@{int(now)}", f"{RECORD}@{int(now) - 400}"
    publisher = BatchPublisher(app, open_producer(app, timeout=10))
    try:
        publisher.confirm(publisher.send([(template, timely)], now))
        publisher.confirm(publisher.send([(template, timely)], now))  # published twice: runs once
        # Published 400 s ago and never taken: 100 s past its deadline when a worker gets it.
        publisher.confirm(publisher.send([(template, late)], now - 400))
        wait_for(lambda: f"{late} expired" in worker.log(), 60, "the late run to be dropped as expired")
        wait_for(lambda: "duplicate delivery dropped" in worker.log(), 30, "the second copy to be dropped")
    finally:
        publisher.producer.connection.release()
    log = worker.log()
    ran = service.lrange(EFFECT_KEY, 0, -1)
    assert len(ran) == 1, (ran, log)
    assert f"{late} expired 100." in log or f"{late} expired 99." in log or f"{late} expired 101." in log, log
    assert "Discarding revoked task" not in log, log  # Celery's own expiry (its clock) never fired
