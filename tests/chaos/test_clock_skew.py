"""Scenario 6: the standby beat's wall clock is 10 minutes ahead of (or behind) the leader's; it takes over on time.

Two beats and two workers of ``tests.chaos.chaosapp``, 50 entries due every 5 s, a 3 s lock. The leader runs on the
real clock; the standby runs under libfaketime (``skew.py``), so every wall-clock read of its process — Celery's,
kombu's, the scheduler's — is 600 s off, while its monotonic clock (the lease) is real. The leader is killed -9 just
after it committed a slot; the standby takes the lock and dispatches from then on.

The scheduler compares due times with the Redis server's ``TIME`` (``fetch_due.lua``) and computes every next due
time against it (``policy.bind_clock``), so the skew must not show: measured on the real clock — the workers' own,
when each run was delivered — no run after the takeover goes out before its slot or more than a tick (plus slack for
50 runs queued on two single-process workers) after it, none is lost or run twice, and every score the standby
commits lies on the real grid. The standby's own records (``published``, stamped with its skewed clock) prove the
skew was there.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest

from tests.chaos.events import DELIVERED, PUBLISHED
from tests.chaos.harness import EDGE, SCHEDULE_KEY, Row, Scenario
from tests.chaos.skew import skewed_or_skip

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

# chaosapp's beat_max_loop_interval: the longest a beat sleeps between two looks at the schedule.
TICK = 1.0
# Delivery adds the queue: 50 runs of a slot through two single-process workers on a loaded 2-core machine.
SLACK = 1.0


class EarlyRunError(AssertionError):
    """A run went out before its slot on the real clock."""


class LateRunError(AssertionError):
    """A run went out more than a tick after its slot (or after the takeover, for a slot due before it)."""


class OffGridScoreError(AssertionError):
    """The store holds a next due time that is not the next slot on the real clock."""


def first_deliveries(scenario: Scenario) -> dict[str, float]:
    """Task id → when a worker first had it (the workers' clocks are real)."""
    first: dict[str, float] = {}
    for event in scenario.read(DELIVERED):
        first[event.id] = min(event.ts, first.get(event.id, event.ts))
    return first


def off_grid(scenario: Scenario, closed: float) -> list[str]:
    """Entries whose committed next due time is not the first slot after the window closed, on the real clock."""
    scores = scenario.store.client().zrange(SCHEDULE_KEY, 0, -1, withscores=True)
    return [f"{key}={score:.2f}" for key, score in scores if not closed - EDGE < score <= closed + scenario.interval]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("offset", [pytest.param(600, id="ahead"), pytest.param(-600, id="behind")])
def test_a_standby_with_a_skewed_clock_takes_over_on_time(
    chaos: Callable[..., Scenario], report: Callable[[Row], None], offset: int
) -> None:
    scenario = chaos(f"6 clock skew {offset:+d}s")  # the harness's 3 s lock
    skewed = skewed_or_skip(offset, scenario.store.url())
    # The leader first, on the real clock: it must hold the lock before the skewed standby exists.
    workers = [scenario.worker("w1"), scenario.worker("w2")]
    leader = scenario.beat("a")
    leader.wait_logged("beat: acquired the lock", 60)
    standby = scenario.beat("b", **skewed)
    scenario.wait_ready(workers, [leader, standby])
    start = scenario.wait_first_dispatch()

    # Kill the leader just after it committed a slot: the standby takes over before the next one is due.
    slot = scenario.next_slot(time.time())
    scenario.wait_committed(slot, scenario.interval + 10)
    scenario.sleep_until(slot + 0.5)
    token = scenario.lock_token()
    assert not [e for e in scenario.read(PUBLISHED) if e.pid == standby.pid], "the skewed beat led before the kill"
    leader.kill()
    killed_at = time.time()
    took_over = scenario.wait_lock_change(token, scenario.lock_timeout + 10)
    closed = scenario.finish([leader, standby], slots_after=2)

    tally = scenario.tally(start, closed)
    delivered = first_deliveries(scenario)
    # The standby stamps `published` with its own (skewed) clock; the worker that got the run, with the real one.
    by_standby = {e.id: e.ts for e in scenario.read(PUBLISHED) if e.pid == standby.pid and e.id in delivered}
    slots = {task_id: int(task_id.rpartition("@")[2]) for task_id in by_standby}
    lateness = {task_id: delivered[task_id] - slot for task_id, slot in slots.items()}
    clock = statistics.median(by_standby[task_id] - delivered[task_id] for task_id in by_standby)
    # A slot due before the takeover waited for it; every later one must go out within a tick of its slot.
    waited = {task_id: max(took_over - slot, 0.0) for task_id, slot in slots.items()}
    early = sorted(task_id for task_id, late_by in lateness.items() if late_by < 0)
    late = sorted(task_id for task_id, late_by in lateness.items() if late_by > waited[task_id] + TICK + SLACK)
    after = [late_by for task_id, late_by in lateness.items() if not waited[task_id]]
    wrong_scores = off_grid(scenario, closed)
    note = (f"standby's clock read {clock:+.1f}s; {len(after)} runs due after the takeover dispatched "
            f"{min(after, default=0):+.2f}..{max(after, default=0):+.2f}s from their slot on the real clock "
            f"(bound 0..{TICK + SLACK:.0f}s); {len(by_standby)} sent by the standby, "
            f"{len(wrong_scores)} score(s) off the real grid")  # fmt: skip
    report(scenario.row(tally, took_over - killed_at, note))

    assert abs(clock - offset) < SLACK + TICK, f"the standby's clock was not {offset:+d}s off: {clock:+.2f}s"
    assert len(after) >= 2 * scenario.entries, f"only {len(after)} run(s) of the standby were due after the takeover"
    scenario.assert_every_run_once(tally, start)
    if early:
        raise EarlyRunError(f"{len(early)} run(s) before their slot: {[(i, lateness[i]) for i in early[:5]]}")
    if late:
        raise LateRunError(f"{len(late)} run(s) more than a tick late: {[(i, lateness[i]) for i in late[:5]]}")
    if wrong_scores:
        raise OffGridScoreError(f"next due times off the real grid: {wrong_scores[:5]}")
