"""A schedule stock celery-redbeat wrote, taken over by the patched scheduler (a rolling upgrade): each run fires
once, at its slot, under the slot's id — not at the score stock stored (floored to the second: ``xx:59`` for a
``* * * * *`` entry, up to a second early for an interval) and again at the slot.

The oracle is stock celery-redbeat's own entry: ``_next_instance`` after a run writes the meta and score exactly as
its beat does."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from celery.schedules import crontab, schedule
from celery.signals import before_task_publish
from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf

from patches.redbeat.schedulers import RedBeatScheduler
from tests.integration.conftest import wait_for
from tests.integration.redbeat_helpers import make_app, published, store

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PERIOD = 7.25  # seconds: a fraction, so stock's floored score lies before the due time
# The beat reads the Redis server's clock; this test, the host's: the same machine, a few milliseconds apart.
CLOCKS = 0.05


@pytest.fixture(autouse=True)
def clean(redis_dbs: None) -> Iterator[None]:
    yield


@pytest.mark.timeout(120)
def test_a_stock_schedule_fires_each_slot_once_at_the_slot() -> None:
    # As the platform's PeriodicTask puts them in beat_schedule: so stock and this scheduler store the same
    # definition, and the sync keeps the score stock wrote.
    plain: dict[str, object] = {"args": (), "kwargs": {}, "options": {}}
    entries = {
        "cron": {"task": "t.cron", "schedule": crontab(minute="*"), **plain},
        "every": {"task": "t.every", "schedule": schedule(run_every=dt.timedelta(seconds=PERIOD)), **plain},
    }
    app = make_app(entries, beat_max_loop_interval=1)
    queue = app.conf.task_default_queue
    ensure_conf(app)
    # Stock's beat just ran both entries: last_run_at = now, and the score it computes right after.
    ran = {}
    for name, entry in entries.items():
        stock = RedBeatSchedulerEntry(app=app, name=name, **entry)  # as stock's update_from_dict makes it
        stock.save()
        stock = stock._next_instance()
        ran[name] = stock.last_run_at.timestamp()
    scores = {name: store().zscore("redbeat::schedule", f"redbeat:{name}") for name in entries}
    minute = (int(ran["cron"]) // 60 + 1) * 60
    assert scores["cron"] == minute - 1  # stock's own score: a second before the slot
    assert 0 < ran["every"] + PERIOD - scores["every"] < 2

    sent_at: dict[str, float] = {}

    def record(headers: dict[str, object], **_: object) -> None:
        sent_at.setdefault(str(headers["id"]), time.time())

    before_task_publish.connect(record)
    beat = RedBeatScheduler(app=app)
    assert {name: store().hget(f"redbeat:{name}", "definition") for name in entries} == beat._static
    try:
        # Both slots, whichever comes last (started at xx:57, the interval's is after the minute's).
        deadline = max(minute, ran["every"] + PERIOD) + 1.5
        while time.time() < deadline:
            time.sleep(min(beat.tick(), 0.25))  # the beat's own pacing: it sleeps what its tick returns
        wait_for(lambda: published(queue), 5, "the runs")
    finally:
        beat.close()
        before_task_publish.disconnect(record)
    sent = {message["headers"]["id"] for message in published(queue)}
    assert sorted(i for i in sent if i.startswith("cron@")) == [f"cron@{minute}"]  # not also cron@<minute - 1>
    assert sent_at[f"cron@{minute}"] >= minute - CLOCKS
    due = ran["every"] + PERIOD
    assert f"every@{int(due)}" in sent and sent_at[f"every@{int(due)}"] >= due - CLOCKS  # not a fraction early
