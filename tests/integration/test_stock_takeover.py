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
from tests.integration.redbeat_helpers import drive, make_app, published, store

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
    # Stock wrote each definition exactly as this beat writes it: it takes them as its own static entries.
    stored = {name: store().hget(f"redbeat:{name}", "definition") for name in entries}
    assert stored == {name: definition.encode() for name, definition in beat.definitions.static.items()}
    try:
        # Both slots, whichever comes last (started at xx:57, the interval's is after the minute's).
        drive(beat, max(minute, ran["every"] + PERIOD) + 1.5 - time.time(), pace=0.25)
        wait_for(lambda: published(queue), 5, "the runs")
    finally:
        beat.close()
        before_task_publish.disconnect(record)
    sent = {message["headers"]["id"] for message in published(queue)}
    assert sorted(i for i in sent if i.startswith("cron@")) == [f"cron@{minute}"]  # not also cron@<minute - 1>
    assert sent_at[f"cron@{minute}"] >= minute - CLOCKS
    due = ran["every"] + PERIOD
    assert f"every@{int(due)}" in sent and sent_at[f"every@{int(due)}"] >= due - CLOCKS  # not a fraction early


@pytest.mark.timeout(60)
def test_a_stock_leader_is_named_and_its_end_is_a_failover(caplog: pytest.LogCaptureFixture) -> None:
    """Stock celery-redbeat leads (its own lock, taken by its own beat_init handler: the oracle) while this
    scheduler stands by: the leader record and healthz name the stock beat, not the beat before it, and taking the
    lock when the stock lease runs out is a failover, counted as one."""
    from types import SimpleNamespace

    from redbeat.schedulers import acquire_distributed_beat_lock

    from alarm_backends.management.health.checks import OK, beat_lock

    app = make_app({"e": {"task": "t.cron", "schedule": crontab(minute="*")}})
    ensure_conf(app)
    stock = SimpleNamespace(app=app, lock_key="redbeat::lock", lock_timeout=2, max_interval=1, lock=None)
    beat = RedBeatScheduler(app=app)
    try:
        beat.tick()
        beat.close()  # a clean stop: the next taker's is a hand-over, not a failover
        acquire_distributed_beat_lock(SimpleNamespace(scheduler=stock))
        stock_token = store().get("redbeat::lock")
        assert stock_token and ":" not in stock_token  # stock's token: a bare uuid
        beat = RedBeatScheduler(app=app)
        beat.tick()
        assert not beat.leading
        record = store().hgetall("redbeat::leader")
        assert (record["token"], record["released"]) == (stock_token, "0")
        status, detail, data = beat_lock(app, 2.0)
        assert status == OK and data["token"] == stock_token and "not this platform's beat" in detail, detail
        # The stock beat dies: its lease runs out, this beat takes the lock over.
        with caplog.at_level("INFO", logger="celery.beat"):
            wait_for(lambda: beat.tick() is not None and beat.leading, 10, "the lock taken over")
        assert "failover: the last leader's lease ran out" in caplog.text
        assert store().hget("redbeat::leader", "previous") == stock_token
    finally:
        beat.close()
