"""The scheduler's leader gate hook (``redbeat_leader_gate``), with a gate whose answers the test sets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery.schedules import crontab

from patches.redbeat.schedulers import RedBeatScheduler
from tests.integration.redbeat_helpers import ids, make_app, store

pytestmark = pytest.mark.redis


class ScriptedGate:
    """A leader gate answering what the test says; it records how it was used."""

    instances: list[ScriptedGate] = []

    def __init__(self, app: Any) -> None:
        self.answer = False
        self.asked = 0
        self.closed = False
        self.max_interval = 0.25
        ScriptedGate.instances.append(self)

    def allows(self) -> bool:
        self.asked += 1
        return self.answer

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def beat(redis_dbs: None) -> Iterator[tuple[RedBeatScheduler, ScriptedGate]]:
    ScriptedGate.instances.clear()
    app = make_app(
        {"a": {"task": "t.minutely", "schedule": crontab(minute="*")}},
        redbeat_leader_gate=f"{__name__}:ScriptedGate",
        beat_max_loop_interval=60,
    )
    scheduler = RedBeatScheduler(app=app)
    yield scheduler, ScriptedGate.instances[-1]
    scheduler.close()


def test_a_beat_the_gate_refuses_never_takes_the_lock(beat: tuple[RedBeatScheduler, ScriptedGate]) -> None:
    scheduler, gate = beat
    for _ in range(3):
        assert scheduler.tick() <= gate.max_interval
    assert gate.asked == 3
    assert store().get("redbeat::lock") is None and not scheduler.leading
    assert ids(scheduler.app.conf.task_default_queue) == []


def test_a_leader_the_gate_turns_away_gives_the_lock_up_at_once(
    beat: tuple[RedBeatScheduler, ScriptedGate],
) -> None:
    scheduler, gate = beat
    gate.answer = True
    # Leading, with nothing due for a minute: the tick still comes back within the gate's interval.
    assert scheduler.tick() <= gate.max_interval
    assert scheduler.leading and store().get("redbeat::lock") == scheduler.token
    gate.answer = False
    scheduler.tick()
    assert not scheduler.leading
    assert store().get("redbeat::lock") is None  # released, not left to expire


def test_a_lock_kept_after_a_step_down_is_released_on_refusal(beat: tuple[RedBeatScheduler, ScriptedGate]) -> None:
    scheduler, gate = beat
    gate.answer = True
    scheduler.tick()
    scheduler.leading = False  # what a step-down on a Redis error leaves: the token still holds the lock
    gate.answer = False
    scheduler.tick()
    assert store().get("redbeat::lock") is None


def test_closing_the_scheduler_closes_the_gate(beat: tuple[RedBeatScheduler, ScriptedGate]) -> None:
    scheduler, gate = beat
    scheduler.close()
    assert gate.closed
