"""Scenario 10: the leader beat is killed with -9 while long jobs of entries under an overlap policy run.

Five entries due every 2 s, each run taking 5 s (2.5 periods), overlap ``skip`` with a 3 s run lease, two beats
(3 s lock) and two workers of three processes. The leader is killed while every entry has a run in progress and a
slot has just found it running. Under the policy's definition nothing is lost and nothing is duplicated: every slot
in the window ran exactly once or was skipped (the run log says ``skipped``), never both; and no two runs of one
entry overlapped, across the failover and the new leader's re-publishing of what the old one left uncommitted.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable

import pytest
import redis

from alarm_backends.core.runlog import RunLogEntry, stream_key
from tests.chaos.events import FINISHED, STARTED
from tests.chaos.harness import Row, Scenario
from tests.conftest import TEST_DB_PLAN

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

INTERVAL, JOB_SECONDS, LOCK_TIMEOUT, LEASE = 2.0, 5.0, 3.0, 3


def skipped_slots(scenario: Scenario) -> list[str]:
    """The slots the workers skipped, from the run log (the platform's log DB on the scenario's events server)."""
    client = redis.Redis(host=scenario.events.host, port=scenario.events.port, db=TEST_DB_PLAN["log"],
                         decode_responses=True)  # fmt: skip
    entries = [RunLogEntry.from_fields(fields) for _, fields in client.xrange(stream_key()) or []]
    return [entry.slot for entry in entries if entry.status == "skipped"]


def overlaps(scenario: Scenario) -> list[tuple[str, str]]:
    """Pairs of runs of one entry that ran at the same time."""
    started = {e.id: e.ts for e in scenario.read(STARTED)}
    spans = collections.defaultdict(list)
    for event in scenario.read(FINISHED):
        spans[event.entry].append((started[event.id], event.ts, event.id))
    found = []
    for runs in spans.values():
        runs.sort()
        found += [(a[2], b[2]) for a, b in itertools.pairwise(runs) if b[0] < a[1]]
    return found


@pytest.mark.timeout(180)
def test_kill_9_of_the_leader_while_overlapping_long_jobs_run(
    chaos: Callable[..., Scenario], report: Callable[[Row], None]
) -> None:
    scenario = chaos("10 kill -9 leader, long jobs, overlap skip", entries=5, interval=INTERVAL,
                     lock_timeout=LOCK_TIMEOUT, job_seconds=JOB_SECONDS, overlap="skip", run_lease=LEASE)  # fmt: skip
    _, beats, start = scenario.launch(beats=2, workers=2, concurrency=3)
    leader = scenario.leader(beats)
    token = scenario.lock_token()
    # Every entry's first run is running; the next slot finds them running and is skipped: kill the leader then.
    scenario.wait_events(STARTED, lambda e: True, scenario.entries, 30)
    scenario.sleep_until(scenario.next_slot(time.time()) + 0.3)
    leader.kill()
    killed_at = time.time()
    failover = scenario.wait_lock_change(token, LOCK_TIMEOUT + 10) - killed_at
    closed = scenario.finish(beats, slots_after=4)  # then drained: every run that will happen did

    tally = scenario.tally(start, closed)
    skipped = collections.Counter(skipped_slots(scenario))
    ran = set(tally.executed)
    lost = tally.expected - ran - set(skipped)
    both = ran & set(skipped)
    twice = {slot: n for slot, n in skipped.items() if n > 1}
    together = overlaps(scenario)
    note = (f"{len(skipped)} skipped (overlap skip), {len(together)} overlapping runs; lost = neither run nor "
            f"skipped")  # fmt: skip
    report(Row(scenario.name, len(tally.expected), tally.runs, len(lost), len(tally.duplicated) + len(both),
               len(tally.extra), failover, time.time() - scenario.started_at, note))  # fmt: skip

    assert not lost, f"neither run nor skipped: {sorted(lost)}"
    assert not tally.duplicated, f"run more than once: {tally.duplicated}"
    assert not both and not twice, (both, twice)
    assert not together, f"runs of one entry overlapped: {together}"
    # The policy acted (each entry's runs take 2.5 periods) and runs went on after the failover.
    assert len(skipped) >= scenario.entries
    assert any(int(slot.rpartition("@")[2]) > killed_at + LOCK_TIMEOUT for slot in ran)
