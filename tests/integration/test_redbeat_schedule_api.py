"""The patched scheduler's Celery interface against the real Redis: entries added through ``update_from_dict``
(Celery's own ``celery.backend_cleanup`` among them) reach the store, and ``redbeat_fetch_limit`` never leaves a
due entry for a later tick."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.schedules import crontab, schedule

from patches.redbeat.entries import decode_meta
from patches.redbeat.schedulers import RedBeatScheduler
from tests.integration.redbeat_helpers import ids, make_app, store

pytestmark = pytest.mark.redis

EVERY_MINUTE = {"task": "t.minutely", "schedule": crontab(minute="*")}


@pytest.fixture(autouse=True)
def clean(redis_dbs: None) -> Iterator[None]:
    yield


def test_celerys_backend_cleanup_entry_is_scheduled(tmp_path: Path) -> None:
    """A result backend that does not expire results itself gets Celery's `celery.backend_cleanup` entry through
    `install_default_entries` → `update_from_dict`; it was written into a dict rebuilt on every read, and lost.
    The oracle is Celery's default scheduler, which adds the same entry."""
    from celery.beat import PersistentScheduler

    app = make_app({"a": EVERY_MINUTE}, result_backend=f"file://{tmp_path}")
    app.conf.result_expires = dt.timedelta(days=1)
    assert not app.backend.supports_autoexpire
    stock = PersistentScheduler(app=app, schedule_filename=str(tmp_path / "celerybeat-schedule"))
    try:
        assert stock.schedule["celery.backend_cleanup"].task == "celery.backend_cleanup"
    finally:
        stock.close()
    beat = RedBeatScheduler(app=app)
    try:
        beat.tick()
        assert store().hget("redbeat:celery.backend_cleanup", "definition")
        assert store().zscore("redbeat::schedule", "redbeat:celery.backend_cleanup") is not None
        assert "celery.backend_cleanup" in beat.schedule
    finally:
        beat.close()


def test_entries_added_while_leading_are_stored_on_the_next_tick() -> None:
    app = make_app({"a": EVERY_MINUTE}, redbeat_first_run="now")
    beat = RedBeatScheduler(app=app)
    try:
        beat.tick()
        beat.update_from_dict({"added": {"task": "t.added", "schedule": schedule(run_every=dt.timedelta(hours=1))}})
        beat.tick()
        assert store().hget("redbeat:added", "definition")
        assert [i for i in ids(app.conf.task_default_queue) if i.startswith("added@")]
    finally:
        beat.close()


def test_a_fetch_limit_serves_every_due_entry_in_the_same_tick() -> None:
    """With redbeat_fetch_limit=3 and 10 due entries, the 7 past the limit waited for the next head (a minute):
    late, and dropped by the skip policy. Now one tick fetches until no more are due."""
    entries = {f"e{i}": {**EVERY_MINUTE, "missed_run": {"policy": "skip"}} for i in range(10)}
    app = make_app(entries, redbeat_fetch_limit=3, redbeat_first_run="now")
    beat = RedBeatScheduler(app=app)
    try:
        beat.tick()
        sent = ids(app.conf.task_default_queue)
        assert sorted(i.split("@")[0] for i in sent) == sorted(entries)
        runs = [decode_meta(store().hget(f"redbeat:{name}", "meta"))[1] for name in entries]
        assert runs == [1] * len(entries)
        assert all(score > time.time() for _, score in store().zrange("redbeat::schedule", 0, -1, withscores=True))
    finally:
        beat.close()
