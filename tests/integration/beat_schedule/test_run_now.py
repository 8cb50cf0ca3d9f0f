"""``beat_schedule run``, ``pause`` and ``resume``: what the leader does with a run-now request or a pause, through
crashes, restarts and a second leader."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from celery import Celery
from celery.schedules import schedule
from django.core.management.base import CommandError

from alarm_backends.core.storage.redis import SERVICE, get_client
from alarm_backends.management import utils
from alarm_backends.service.scheduler import dedupe
from patches.redbeat.controls import Controls
from patches.redbeat.schedulers import RedBeatScheduler
from patches.redbeat.store import Store
from tests.integration.beat_schedule.helpers import ENTRIES, QUEUE, cli, make_due, runs, schedule_app
from tests.integration.conftest import Worker, wait_for
from tests.integration.jobs import EFFECT_KEY
from tests.integration.redbeat_helpers import ids, make_app, snapshot, store

pytestmark = pytest.mark.redis


def test_run_now_is_published_once_by_the_leader(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beat = beats()
    beat.tick()
    queue = app.conf.task_default_queue
    before = ids(queue)
    out, _ = cli("run", "hourly")
    task_id = out.split()[-1]
    name, _, stamp = task_id.rpartition("@")
    assert name == "hourly" and len(stamp) == 13  # epoch ms: never equal to a slot's id (epoch seconds)
    assert dedupe.is_scheduled_id(task_id)
    again, _ = cli("run", "hourly")  # a second operator: joins the pending request
    assert "already pending" in again and again.split()[-1] == task_id
    assert "run requested" in cli("show", "hourly")[0]
    beat.tick()
    beat.tick()
    published = ids(queue)[len(before) :]
    assert published == [task_id]
    assert runs("hourly") == 2 and store().hlen("redbeat::run-now") == 0
    assert store().zscore("redbeat::schedule", "redbeat:hourly") > time.time() + 3000  # its schedule is untouched


def test_concurrent_requests_make_one_run(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beats().tick()
    controls = Controls(Store(store(), "redbeat:"))
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: controls.request_run("minutely"), range(8)))
    assert sum(o.changed for o in outcomes) == 1 and len({o.stamp for o in outcomes}) == 1


def test_a_run_request_survives_a_crash_between_publish_and_commit_and_runs_once(
    app: Celery, beats: Callable[..., RedBeatScheduler]
) -> None:
    first = beats()
    first.tick()
    queue = app.conf.task_default_queue
    task_id = cli("run", "hourly")[0].split()[-1]

    def crash(token: str, updates: object) -> int:
        raise SystemExit("killed between publish and commit")

    first.store.commit = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        first.tick()
    assert store().hget("redbeat::run-now", "hourly") == task_id.rpartition("@")[2]  # still pending
    store().delete("redbeat::lock")  # its lease runs out
    successor = beats()
    successor.tick()
    again = [i for i in ids(queue) if i == task_id]
    assert len(again) == 2  # the same id from both leaders...
    assert [dedupe.claim("t.hourly", i, 60, redelivered=False) for i in again] == [True, False]  # ...runs once
    assert store().hlen("redbeat::run-now") == 0


def test_only_the_lock_holder_serves_a_request(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    deposed = beats()
    deposed.tick()
    cli("run", "hourly")
    store().set("redbeat::lock", "another-beat", px=3000)
    before = snapshot()
    deposed.tick()
    assert not deposed.leading and snapshot() == before  # nothing published, the request still pending


def test_run_wait_returns_once_the_leader_published(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beat = beats()
    beat.tick()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.2):
            beat.tick()

    ticker = threading.Thread(target=loop)
    ticker.start()
    try:
        out, _ = cli("run", "minutely", "--wait", "10")
    finally:
        stop.set()
        ticker.join()
    requested, published = out.splitlines()
    task_id = requested.split()[-1]
    assert published.startswith(f"published {task_id} at ") and published.endswith(" after the request")
    assert task_id in ids(QUEUE)


def test_run_wait_without_a_leader_times_out_and_keeps_the_request(
    app: Celery, beats: Callable[..., RedBeatScheduler]
) -> None:
    stopped = beats()
    stopped.tick()
    stopped.close()  # synced the schedule, then stopped: nobody leads
    with pytest.raises(CommandError, match=r"was not published within 1s; the request stays pending"):
        cli("run", "hourly", "--wait", "1")
    assert store().hexists("redbeat::run-now", "hourly")


def test_pause_skips_slots_survives_a_restart_and_resume_runs_from_the_next_slot(
    app: Celery, beats: Callable[..., RedBeatScheduler]
) -> None:
    beat = beats()
    beat.tick()
    queue = QUEUE
    out, _ = cli("pause", "minutely")
    assert out.startswith("paused minutely: the leader skips its slots")
    assert "already paused" in cli("pause", "minutely")[0]
    make_due("minutely")
    beat.tick()
    assert ids(queue) == ["minutely@" + ids(queue)[0].split("@")[1]]  # only the first run, before the pause
    skipped_to = store().zscore("redbeat::schedule", "redbeat:minutely")
    assert skipped_to % 60 == 0 and skipped_to > time.time()  # moved to its next slot, nothing queued up
    assert runs("minutely") == 1
    row = next(line for line in cli("list")[0].splitlines() if line.startswith("minutely "))
    assert "(paused)" in row and row.rstrip().endswith("paused")
    assert json.loads(cli("show", "minutely", "--json")[0])["paused"] is True

    # A restart with a changed definition: the new leader's sync rewrites the definition and the score...
    beat.close()
    restarted = beats(schedule_app(minutely={**ENTRIES["minutely"], "args": ("v2",)}))
    restarted.tick()
    make_due("minutely")
    restarted.tick()
    assert len(ids(queue)) == 1 and runs("minutely") == 1  # ...and it is still paused

    out, _ = cli("resume", "minutely")
    assert out.startswith("resumed minutely: it runs again from its next slot")
    assert "is not paused" in cli("resume", "minutely")[0]
    restarted.tick()
    assert len(ids(queue)) == 1  # no catching up on the skipped slots: the next slot is still ahead
    make_due("minutely")  # its next slot comes
    restarted.tick()
    assert len(ids(queue)) == 2 and runs("minutely") == 2


def test_a_paused_entry_can_still_be_run_by_hand(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beat = beats()
    beat.tick()
    cli("pause", "minutely")
    make_due("minutely")
    task_id = cli("run", "minutely")[0].split()[-1]
    beat.tick()  # due and requested in one tick: the slot is skipped, the request runs
    assert ids(QUEUE)[1:] == [task_id]
    assert runs("minutely") == 2


def test_a_real_worker_runs_a_request_published_twice_once(
    redis_dbs: None, monkeypatch: pytest.MonkeyPatch, start_worker: Callable[..., Worker]
) -> None:
    record = "alarm_backends.service.scheduler.tasks.cron.tests_integration_jobs_record_effect"
    rec = {"task": record, "schedule": schedule(run_every=dt.timedelta(hours=1)), "options": {"queue": "celery_cron"}}
    app = make_app({"rec": rec}, redbeat_first_run="next")
    monkeypatch.setattr(utils, "backend_app", lambda: app)
    first = RedBeatScheduler(app=app)
    first.tick()
    task_id = cli("run", "rec")[0].split()[-1]
    first.store.commit = lambda token, updates: (_ for _ in ()).throw(SystemExit("crash"))  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        first.tick()
    store().delete("redbeat::lock")
    successor = RedBeatScheduler(app=app)
    successor.tick()
    successor.close()
    worker = start_worker()
    wait_for(lambda: "duplicate delivery dropped" in worker.log(), 60, "the second copy to be dropped")
    assert get_client(SERVICE).llen(EFFECT_KEY) == 1
    slot = f"bkmonitorv3.default.beat.slot.{task_id}"
    wait_for(lambda: get_client(SERVICE).get(slot) == "done", 10, "the run's release")  # after the job's effect
