"""Scenario 5: a worker dies in the middle of a run; the run is delivered again and completes exactly once.

Jobs sleep 2 s between recording their start and their finish. With ``acks_late`` (the platform's setting) a message
is acknowledged only after its run, so a run cut short stays unacknowledged in the broker and is handed out again
(by a live worker once the dead one has been silent for the consumer timeout, 3 s here, flagged ``redelivered``: the
platform's Redis transport, patches/kombu_redis); the dedupe claim of the
cut-short run is still ``running``, which a redelivery may take over.

5. kill -9 of the whole worker (main process and pool), as when its host or container dies; a replacement starts,
   as supervisord would start one.
5b. kill -9 of the pool process running the job only, as the OOM killer does: the worker's main process survives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable

import pytest

from tests.chaos.events import CONSUMER_TIMEOUT, DELIVERED, FINISHED, STARTED
from tests.chaos.harness import Event, Row, Scenario

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

JOB_SECONDS = 2.0
ENTRIES = 4


class LostRunError(AssertionError):
    """A run cut short by a killed pool process was never run again."""


def started_on(scenario: Scenario, host: str, after: float) -> Event:
    """Until a run of a grid slot starts on worker ``host`` (after ``after``); -> its start event."""

    def running(event: Event) -> bool:
        return str(event.fields.get("host", "")).startswith(host + "@") and event.ts > after

    return scenario.wait_events(STARTED, running, 1, 4 * scenario.interval + 10)[0]


def unfinished(scenario: Scenario, host: str) -> set[str]:
    done = {e.id for e in scenario.read(FINISHED)}
    return {e.id for e in scenario.read(STARTED) if str(e.fields.get("host", "")).startswith(host + "@")} - done


@pytest.mark.timeout(150)
def test_kill_9_of_a_worker_mid_task(chaos: Callable[..., Scenario], report: Callable[[Row], None]) -> None:
    scenario = chaos("5 kill -9 worker mid-task", entries=ENTRIES, job_seconds=JOB_SECONDS, lock_timeout=10.0)
    workers, beats, start = scenario.launch(beats=1, workers=2, concurrency=2)
    victim = workers[0]
    # A run of a grid slot (not the first dispatch), caught while it sleeps.
    started_on(scenario, "w1", scenario.next_slot(start))
    victim.kill()
    killed_at = time.time()
    cut = unfinished(scenario, "w1")
    scenario.worker("w3", concurrency=2)  # supervisord restarts a dead program
    rerun = scenario.wait_events(FINISHED, lambda e: e.id in cut, len(cut), 40)
    recovery = max(e.ts for e in rerun) - killed_at
    closed = scenario.finish(beats)

    tally = scenario.tally(start, closed)
    starts = [e for e in scenario.read(STARTED) if e.id in cut]
    redelivered = [e for e in scenario.read(DELIVERED) if e.id in cut and e.fields.get("redelivered")]
    note = (f"{len(cut)} run(s) cut short, redelivered {len(redelivered)}x, started {len(starts)}x, completed "
            f"{len(rerun)}x; done {recovery:.1f}s after the kill (timeout {CONSUMER_TIMEOUT:.0f}s)")  # fmt: skip
    report(scenario.row(tally, None, note))

    assert cut, "the worker was not killed mid-task"
    assert len(starts) == 2 * len(cut)  # the cut-short run and its redelivery, nothing else
    scenario.assert_every_run_once(tally, start)


@pytest.mark.timeout(150)
def test_kill_9_of_the_pool_process_mid_task(chaos: Callable[..., Scenario], report: Callable[[Row], None]) -> None:
    scenario = chaos("5b kill -9 pool process mid-task", entries=ENTRIES, job_seconds=JOB_SECONDS, lock_timeout=10.0)
    workers, beats, start = scenario.launch(beats=1, workers=2, concurrency=2)
    run = started_on(scenario, "w1", scenario.next_slot(start))
    # The pool process is a child of a worker this test started; it is killed by its own pid only.
    os.kill(run.pid, signal.SIGKILL)
    killed_at = time.time()
    workers[0].wait_logged("WorkerLostError", 10)
    # The worker's main process survives and requeues the cut run itself (task_reject_on_worker_lost).
    # A run that never finishes again is not an error here: the tally below reports it as lost.
    rerun: list[Event] = []
    with contextlib.suppress(AssertionError):
        rerun = scenario.wait_events(FINISHED, lambda e: e.id == run.id, 1, 15)
    closed = scenario.finish(beats)

    tally = scenario.tally(start, closed)
    done = f"completed {time.time() - killed_at:.1f}s after" if rerun else "never run again"
    report(scenario.row(tally, None, f"{run.id} cut short by kill -9 of pool pid {run.pid}: {done}"))

    assert not tally.duplicated, tally.duplicated
    assert tally.lost <= {run.id}, sorted(tally.lost)
    if run.id in tally.lost:
        raise LostRunError(f"{run.id} was acknowledged when its pool process died and never ran to completion")
