"""Jitter through the real scheduler and store: 200 entries on `* * * * *` with a 30 s jitter are stored due over
the first 30 s after their slot (the slot from croniter), the same from a second beat, and a due one is published
under its slot's id, its next score again within the jitter after the next slot. (The test app's first run is
"now": the first tick fires every entry at once, each as the slot the jitter window it is in belongs to.)"""

from __future__ import annotations

import datetime as dt

import pytest
from croniter import croniter

from alarm_backends.service.scheduler.crontab import make_crontab
from patches.redbeat.schedulers import RedBeatScheduler
from tests.integration.redbeat_helpers import ids, make_app, store

pytestmark = pytest.mark.redis

JITTER = 30
ENTRIES = {f"j{n:03}": {"task": "t.j", "schedule": make_crontab("* * * * *"), "jitter": JITTER} for n in range(200)}


def first_minute_after(epoch: float) -> float:
    return float(croniter("* * * * *", dt.datetime.fromtimestamp(epoch, dt.UTC)).get_next(float))


def scores() -> dict[str, float]:
    return {key.removeprefix("redbeat:"): score for key, score in store().zrange("redbeat::schedule", 0, -1,
                                                                               withscores=True)}  # fmt: skip


@pytest.mark.usefixtures("redis_dbs")
def test_jittered_entries_spread_over_the_window_and_keep_their_slot_ids() -> None:
    app = make_app(dict(ENTRIES))
    beat = RedBeatScheduler(app=app)
    try:
        synced_at = float(store().time()[0])
        beat.tick()
        first = scores()
        slots = {first_minute_after(score - JITTER) for score in first.values()}
        # All of one slot: the first minute after the sync (the next one, should a minute turn during it).
        assert len(slots) == 1 and slots <= {first_minute_after(synced_at), first_minute_after(synced_at) + 60}
        [slot] = slots
        delays = [score - slot for score in first.values()]
        assert all(0 <= delay < JITTER for delay in delays), sorted(delays)[-3:]
        assert len({int(delay // 3) for delay in delays}) == 10  # every 3-second band of the window is used

        # A second beat (a standby syncing the same schedule) stores the same scores.
        store().delete("redbeat::lock")
        other = RedBeatScheduler(app=make_app(dict(ENTRIES), task_default_queue=app.conf.task_default_queue))
        other.tick()
        assert scores() == first
        other.close()

        # One entry falls due a minute early (its previous slot, delayed by its jitter): published under that
        # slot's id, its next score within the jitter after the next slot.
        for _ in range(3):  # the first beat finds its lock gone (stands down), then takes the free one
            beat.tick()
            if beat.leading:
                break
        assert beat.leading
        previous = slot - 120  # a slot no tick published (the first one fired every entry "now", a minute later)
        delayed = previous + (first["j007"] - slot)  # any delay below the jitter
        store().zadd("redbeat::schedule", {"redbeat:j007": delayed})
        beat.tick()
        assert ids(app.conf.task_default_queue).count(f"j007@{int(previous)}") == 1
        assert 0 <= scores()["j007"] - first_minute_after(float(store().time()[0])) < JITTER
    finally:
        beat.close()
