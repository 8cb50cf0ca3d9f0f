"""Scenarios 3 and 4: the scheduler's Redis and the broker restart under a running beat.

3. The schedule store (AOF, as the embedded Redis of ``make run`` keeps it) is down across a due instant. The beats
   reconnect, one takes the lock and syncs the schedule, keeping every entry's score and ``last_run_at``: the slot
   missed meanwhile is served once, late, under its own slot id (policy ``once``), and the store's run counts match
   every run. (A store that comes back *empty* makes every entry new: each waits for its next slot, and the slot
   missed while it was down is lost with its record — logged by the beat, see the README's *Reliability*.)
4. The broker (AOF, so a restart keeps its messages, as a durable RabbitMQ queue would) restarts twice: once while the
   beat is half-way through publishing a batch, once down across a due instant. Whatever beat could not publish it
   does not commit, and publishes again next tick under the same ids; the store's scores and metas end up matching
   exactly what the workers ran, and nothing is lost: the workers take with the platform's transport, which moves
   a message from its queue into the worker's records in one step (kombu's ``BRPOP`` lost the message Redis popped
   for a worker as it shut down, about once in eight restarts).
4b. The broker goes down as a worker has taken a message and not yet received it: it runs once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.chaos.events import FAULT, PUBLISHED
from tests.chaos.harness import MID_BATCH, Row, Scenario

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


@pytest.mark.timeout(150)
def test_restart_of_the_schedule_store(chaos: Callable[..., Scenario], report: Callable[[Row], None]) -> None:
    scenario = chaos("3 restart scheduler Redis", lock_timeout=3.0, persistent_store=True)
    _, beats, start = scenario.launch()
    slot = scenario.next_slot(time.time())
    scenario.wait_committed(slot, scenario.interval + 10)
    scenario.sleep_until(slot + 1.0)
    # Down across the next due instant (slot + interval), back 1.5 s after it.
    scenario.store.stop()
    down = time.time()
    scenario.sleep_until(slot + scenario.interval + 1.5)
    scenario.store.start()
    up = time.time()
    missed_slots = [s for s in range(slot, int(up) + 1, int(scenario.interval)) if down < s < up]
    missed = {task_id for s in missed_slots for task_id in scenario.slot_ids(s)}
    resumed = scenario.wait_events(PUBLISHED, lambda e: e.ts > up, scenario.entries, 20)
    recovery = min(e.ts for e in resumed) - up
    closed = scenario.finish(beats, slots_after=2)

    tally = scenario.tally(start, closed)
    synced = sum(beat.log().count("schedule synced") for beat in beats)
    served = sorted(missed & set(tally.executed))
    note = (
        f"store down {up - down:.1f}s: {len(missed)} runs due meanwhile, {len(served)} served once, late, under "
        f"their own slot ids; {synced - 1} re-sync(s); dispatching {recovery:.2f}s after it was back"
    )
    report(scenario.row(tally, None, note))

    assert missed, "no slot fell due while the store was down"
    assert served == sorted(missed), sorted(missed - set(served))
    # The store kept its scores and run counts: they must match every run the workers executed.
    scenario.assert_every_run_once(tally, start)
    assert synced >= 2, "the schedule was not synced again after the restart"


@pytest.mark.timeout(150)
def test_restart_of_the_broker(chaos: Callable[..., Scenario], report: Callable[[Row], None]) -> None:
    # A lease longer than the faults: the lock is not what this scenario is about.
    scenario = chaos("4 restart broker", lock_timeout=10.0, persistent_broker=True)
    _, beats, start = scenario.launch(beats=1)
    beat = beats[0]

    # a. Mid-publish: the beat holds still at its 21st message while the broker restarts under it.
    scenario.arm(beat, "PAUSE", MID_BATCH, 2.0)
    fault = scenario.wait_events(FAULT, lambda e: True, 1, 3 * scenario.interval + 10)[0]
    scenario.broker.restart()
    slot_a = scenario.next_slot(fault.ts - scenario.interval)
    scenario.wait_committed(slot_a, 20)

    # b. Down across a due instant: every publish fails until it is back.
    slot_b = scenario.next_slot(time.time() + 1.5)
    scenario.sleep_until(slot_b - 1.0)
    scenario.broker.stop()
    down = time.time()
    scenario.sleep_until(slot_b + 2.0)
    scenario.broker.start()
    up = time.time()
    scenario.wait_committed(slot_b, 30)
    sent_b = [e for e in scenario.read(PUBLISHED) if e.epoch == slot_b]
    recovery = min(e.ts for e in sent_b) - up
    closed = scenario.finish(beats)

    tally = scenario.tally(start, closed)
    problems = scenario.committed_problems(start)
    failures = beat.log().count("beat: publishing failed")
    published_a = sum(1 for e in scenario.read(PUBLISHED) if e.epoch == slot_a)
    note = (f"a: slot {slot_a} published {published_a}x for 50 entries; b: down {up - down:.1f}s across slot "
            f"{slot_b}, published {recovery:.2f}s after the broker was back; {failures} failed publish(es) retried; "
            f"store vs runs: {len(problems)} mismatch(es)")  # fmt: skip
    report(scenario.row(tally, None, note))

    assert failures >= 1, "no publish failed: the broker restart did not hit the beat"
    scenario.assert_every_run_once(tally, start)


@pytest.mark.timeout(150)
def test_restart_of_the_broker_as_a_worker_takes_a_message(
    chaos: Callable[..., Scenario], report: Callable[[Row], None]
) -> None:
    scenario = chaos("4b restart broker mid-take", lock_timeout=10.0, persistent_broker=True)
    workers, beats, start = scenario.launch(beats=1, workers=1)
    worker = workers[0]
    # The worker holds still with its 5th message off the queue and in its records, not yet received; the broker
    # goes down meanwhile and stays down past the pause, so the run's acknowledgement fails and the worker reconnects
    # (the moment kombu's own transport lost the message: it recorded it only then).
    scenario.arm(worker, "PAUSE", 5, 2.0)
    fault = scenario.wait_events(FAULT, lambda e: e.pid == worker.pid, 1, 3 * scenario.interval + 10)[0]
    went_down, back = scenario.broker.restart(down=3.0)
    taken = str(fault.fields["id"])
    # Two slots more: a publish that met the broker down waits in kombu's connection backoff (2 s steps), and once it
    # caught up late (7 s in one CI run), the slot due meanwhile needs a tick of its own before the window closes.
    closed = scenario.finish(beats, slots_after=2)

    tally = scenario.tally(start, closed)
    ran = tally.executed[taken]
    put_back = sum(1 for line in worker.log().splitlines() if "put back in their queues" in line)
    note = f"{taken} taken as the broker went down for {back - went_down:.1f}s: ran {ran}x, {put_back} put-back(s)"
    report(scenario.row(tally, None, note))

    assert ran == 1
    scenario.assert_every_run_once(tally, start)
