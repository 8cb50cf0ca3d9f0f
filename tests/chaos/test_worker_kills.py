"""Scenario 9: a worker host killed with -9 a hundred times in the middle of consuming a burst, on the Redis broker.

One worker stays up the whole time; each round publishes a burst of runs (scheduled ids ``k<round>@<n>``, which the
workers' dedupe knows), starts a second worker, kills its whole process group with -9 as soon as it has received
its first or second run, and goes on. What each killed worker held — taken from the
queue, received, running, or prefetched — must come back through the platform's transport (a live worker puts back
what a consumer silent for the consumer timeout held) and run: every run is delivered once, or redelivered and
dropped by the dedupe once it finished, and none is lost. Bounded: a fixed number of rounds, each wait with a
deadline.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable

import pytest
from celery import Celery

from tests.chaos.events import CONSUMER_TIMEOUT, DELIVERED, FINISHED, QUEUE, STARTED, TASK
from tests.chaos.harness import Event, Row, Scenario
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

ROUNDS, BURST, JOB_SECONDS = 100, 12, 0.2


def on_host(prefix: str) -> Callable[[Event], bool]:
    return lambda event: str(event.fields.get("host", "")).startswith(prefix)


@pytest.mark.timeout(600)  # about 130 s here: 100 worker start-ups
def test_kill_9_of_a_worker_host_a_hundred_times_mid_burst(
    chaos: Callable[..., Scenario], report: Callable[[Row], None]
) -> None:
    scenario = chaos("9 kill -9 worker x100 mid-burst", entries=0, job_seconds=JOB_SECONDS)
    survivor = scenario.worker("w0", concurrency=2)
    survivor.wait_logged("ready.", 60)
    publisher = Celery("chaos-burst", broker=scenario.broker.url())
    kill_at = random.Random(9)  # the same kill moments on every run
    published: list[str] = []
    for round_ in range(ROUNDS):
        victim = scenario.worker(f"v{round_}", concurrency=2)
        victim.wait_logged("ready.", 60)
        ids = [f"k{round_}@{n}" for n in range(BURST)]
        for task_id in ids:
            publisher.send_task(TASK, task_id=task_id, queue=QUEUE)
        published += ids
        # Killed as soon as it has received its `at`-th run: mid-run (runs last 0.2 s; the events are polled every
        # 0.1 s), with more taken or prefetched behind it.
        scenario.wait_events(DELIVERED, on_host(f"v{round_}@"), kill_at.choice((1, 2)), 30)
        victim.kill()
    # every round's runs finished, the killed workers' too, put back by the survivor
    wait_for(
        lambda: set(published) <= {e.id for e in scenario.read(FINISHED)},
        20 * CONSUMER_TIMEOUT + ROUNDS * BURST * JOB_SECONDS,
        f"all {len(published)} runs to finish",
    )
    scenario.drain()
    survivor.stop()

    runs = collections.Counter(e.id for e in scenario.read(FINISHED))
    starts = collections.Counter(e.id for e in scenario.read(STARTED))
    delivered = scenario.read(DELIVERED)
    redelivered = [e for e in delivered if e.fields.get("redelivered")]
    cut_short = sum(1 for task_id in published if starts[task_id] > runs[task_id])
    lost = [task_id for task_id in published if not runs[task_id]]
    twice = {task_id: n for task_id, n in runs.items() if n > 1}
    consumers = scenario.broker.client().zrange("_kombu.consumers", 0, -1)
    note = (f"{ROUNDS} kills: {len(redelivered)} redelivered, {cut_short} run(s) cut short and run again, "
            f"{len(delivered) - len(published)} second deliveries; consumers left {len(consumers)}")  # fmt: skip
    report(Row(scenario.name, len(published), len(runs), len(lost), len(twice), len(set(runs) - set(published)),
               None, time.time() - scenario.started_at, note))  # fmt: skip

    assert not lost, f"{len(lost)} run(s) lost: {lost[:10]}"
    assert not twice, f"run more than once: {twice}"
    assert redelivered, "no kill caught a worker holding a run"
    assert not consumers, f"dead consumers never reaped: {consumers}"  # the survivor deregistered as it stopped
