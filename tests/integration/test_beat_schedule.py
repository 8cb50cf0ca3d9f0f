"""``manage.py beat_schedule`` against the real Redis and a real patched scheduler ticking in this process:
list/show/run/pause/resume round trips, and what the leader does with a pause or a run-now request."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from celery import Celery
from celery.schedules import crontab, schedule
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from alarm_backends.core.storage.redis import SERVICE, get_client
from alarm_backends.management.commands import beat_schedule
from alarm_backends.service.scheduler import dedupe
from alarm_backends.service.scheduler.crontab import make_crontab
from patches.redbeat.controls import Controls
from patches.redbeat.entries import decode_meta
from patches.redbeat.schedulers import RedBeatScheduler
from patches.redbeat.store import Store
from tests.integration.conftest import Worker, wait_for
from tests.integration.jobs import EFFECT_KEY
from tests.integration.redbeat_helpers import ids, make_app, snapshot, store

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parents[2]
ENTRIES = {
    "minutely": {"task": "t.minutely", "schedule": crontab(minute="*")},
    "hourly": {"task": "t.hourly", "schedule": schedule(run_every=dt.timedelta(hours=1)), "args": (1, "x")},
    # "0 0 1 * *" in the crontab lists' (Celery's) order: Mondays at 00:00, not the 1st of the month.
    "mondays": {"task": "t.mondays", "schedule": make_crontab("0 0 1 * *"), "missed_run": {"policy": "skip"}},
}


QUEUE = "bkm-test-schedule-q"


def schedule_app(**changes: dict[str, object]) -> Celery:
    """An app with ENTRIES (and ``changes``); t.minutely carries its own queue and expires, as the cron tasks do."""
    app = make_app({name: dict(entry) for name, entry in {**ENTRIES, **changes}.items()})

    @app.task(name="t.minutely", queue=QUEUE, expires=300, shared=False)
    def minutely() -> None:
        """Its queue and expires are attributes of the task, as the cron loader makes them."""

    return app


@pytest.fixture
def app(redis_dbs: None, monkeypatch: pytest.MonkeyPatch) -> Celery:
    """The app the command reads instead of the backend app."""
    made = schedule_app()
    monkeypatch.setattr(beat_schedule, "backend_app", lambda: made)
    return made


@pytest.fixture
def beats(app: Celery) -> Iterator[Callable[..., RedBeatScheduler]]:
    """Makes schedulers on the test app (or another one), closed at the end."""
    made: list[RedBeatScheduler] = []

    def make(on: Celery | None = None) -> RedBeatScheduler:
        made.append(RedBeatScheduler(app=on or app))
        return made[-1]

    yield make
    for beat in made:
        beat.close()


def cli(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("beat_schedule", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def make_due(name: str) -> None:
    store().zadd("redbeat::schedule", {f"redbeat:{name}": time.time() - 1})


def runs(name: str) -> int:
    return decode_meta(store().hget(f"redbeat:{name}", "meta"))[1]


def test_an_empty_store_lists_the_configured_entries_as_not_synced(app: Celery) -> None:
    """Before any beat synced: every configured entry, state `not synced`, in the table and the JSON (was: an
    error and no rows)."""
    out, _ = cli()
    lines = out.splitlines()[1:]
    rows = {line.split()[0]: line for line in lines[: len(ENTRIES)]}
    assert set(rows) == set(ENTRIES) and all(line.endswith("not synced") for line in rows.values())
    assert QUEUE in rows["minutely"] and "300s" in rows["minutely"] and "0 0 1 * *" in rows["mondays"]
    assert "holds no entries: no beat has synced the schedule into it yet" in out
    assert f"0 entries in redbeat:* in redis://127.0.0.1:6379/15, {len(ENTRIES)} not synced;" in out
    out, err = cli("list", "--json")
    listed = {item["name"]: item for item in json.loads(out)}
    assert set(listed) == set(ENTRIES) and "no beat has synced" in err
    assert {item["state"] for item in listed.values()} == {"not synced"}
    assert (listed["minutely"]["queue"], listed["minutely"]["next_run"]) == (QUEUE, None)
    with pytest.raises(CommandError, match="no beat has synced"):
        cli("show", "minutely")


def test_an_entry_added_since_the_last_sync_is_listed_as_not_synced(
    app: Celery, beats: Callable[..., RedBeatScheduler]
) -> None:
    beats().tick()
    app.conf.beat_schedule["added"] = {"task": "t.added", "schedule": crontab(minute="*/5")}
    listed = {item["name"]: item["state"] for item in json.loads(cli("--json")[0])}
    assert listed == {"minutely": "active", "hourly": "active", "mondays": "active", "added": "not synced"}


def test_a_bad_crontab_entry_is_an_error_row_not_a_refusal(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beats().tick()
    bad = ["alarm_backends.jobs.heartbeat.cluster_heartbeat", "* * *", "cluster"]
    with override_settings(ACTION_TASK_CRONTAB=[bad]):
        out, _ = cli()
        listed = {item["name"]: item for item in json.loads(cli("--json")[0])}
    [line] = [line for line in out.splitlines() if line.startswith(bad[0] + " ")]
    assert line.endswith("error")
    assert f"  {bad[0]}: ACTION_TASK_CRONTAB[0] = {bad!r}: bad cron '* * *'" in out
    assert ", 1 error;" in out
    assert listed[bad[0]]["state"] == "error" and listed[bad[0]]["problem"].startswith("ACTION_TASK_CRONTAB[0] = ")
    assert listed["minutely"]["state"] == "active"


def test_the_command_skips_djangos_system_checks() -> None:
    """A malformed entry made Django's system checks refuse to run `beat_schedule` (and `healthz`) at all, so the
    operator could not see it; beat skips such an entry, and these commands show it as an error row."""
    env = os.environ | {"BKAPP_SETTINGS_ACTION_TASK_CRONTAB": '[["a.job", "* * *", "cluster"]]'}
    result = subprocess.run([sys.executable, "manage.py", "beat_schedule", "list", "--json"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    [row] = [item for item in json.loads(result.stdout) if item["name"] == "a.job"]
    assert row["state"] == "error" and "bad cron '* * *'" in row["problem"]


def test_list_shows_every_entry_as_stored(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beats().tick()  # syncs and runs every entry once (never-run entries fire at once)
    out, _ = cli("list")
    header, *lines = out.splitlines()
    assert header.split() == ["NAME", "QUEUE", "CRON", "(UTC)", "DESCRIPTION", "NEXT", "RUN", "LAST", "RUN", "RUNS",
                              "EXPIRES", "STATE"]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[:3]}
    assert set(rows) == {"minutely", "hourly", "mondays"}
    assert QUEUE in rows["minutely"] and "300s" in rows["minutely"]
    assert "0 0 1 * *" in rows["mondays"] and "At 00:00, only on Monday" in rows["mondays"]
    assert "Every 1h" in rows["hourly"] and app.conf.task_default_queue in rows["hourly"]
    assert all(line.rstrip().endswith("active") and "(in " in line for line in rows.values())
    # Columns are aligned: every row's QUEUE starts where the header's does.
    assert {line.index(line.split()[1]) for line in rows.values()} == {header.index("QUEUE")}
    assert "3 entries in redbeat:* in redis://127.0.0.1:6379/15; a beat leads" in out

    listed = {item["name"]: item for item in json.loads(cli("--json")[0])}
    minutely = listed["minutely"]
    assert set(minutely) == {"name", "task", "queue", "cron", "description", "next_run", "next_run_in", "last_run",
                             "total_runs", "expires", "enabled", "paused", "paused_since", "run_requested", "state",
                             "static", "problem"}  # fmt: skip
    assert (minutely["queue"], minutely["cron"], minutely["expires"], minutely["total_runs"]) == (
        QUEUE, "* * * * *", 300, 1)  # fmt: skip
    next_run = dt.datetime.fromisoformat(minutely["next_run"])
    assert next_run.tzinfo is not None and next_run.second == 0 and 0 < minutely["next_run_in"] <= 60
    assert dt.datetime.fromisoformat(minutely["last_run"]).timestamp() == pytest.approx(time.time(), abs=5)
    assert (minutely["paused"], minutely["enabled"], minutely["static"]) == (False, True, True)
    assert listed["hourly"]["cron"] is None and listed["hourly"]["expires"] is None


def test_show_prints_every_field_with_the_definition_and_policy(
    app: Celery, beats: Callable[..., RedBeatScheduler]
) -> None:
    beats().tick()
    out, _ = cli("show", "mondays")
    fields = {label: value.strip() for label, _, value in (line.partition(":") for line in out.splitlines())}
    assert fields["task"] == "t.mondays" and fields["key"] == "redbeat:mondays"
    assert fields["cron"].startswith("0 0 1 * *  (Celery's field order")
    assert fields["description"] == "At 00:00, only on Monday (UTC)"
    assert fields["missed_run"] == "skip (grace 0s, max_catchup 10)"
    assert fields["total runs"] == "1" and fields["paused"] == "no" and fields["run requested"] == "no"
    assert fields["leader"].startswith("a beat leads")
    detailed = json.loads(cli("show", "hourly", "--json")[0])
    assert detailed["args"] == [1, "x"] and detailed["kwargs"] == {} and detailed["options"] == {}
    assert detailed["missed_run"] == {"policy": "once", "grace": 0.0, "max_catchup": 10}
    assert detailed["schedule"] == "<freq: 1.00 hour>" and detailed["key"] == "redbeat:hourly"


def test_an_unreadable_entry_is_listed_not_fatal(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beats().tick()
    store().hset("redbeat:broken", mapping={"definition": "{not json", "meta": "garbage"})
    store().zadd("redbeat::schedule", {"redbeat:broken": time.time() + 60})
    rows = {line.split()[0]: line for line in cli("list")[0].splitlines()[1:5]}
    assert rows["broken"].rstrip().endswith("unreadable") and len(rows) == 4
    assert "unreadable definition" in cli("show", "broken")[0]


def test_an_unknown_name_is_a_clear_error(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beats().tick()
    expected = (
        r"no entry named 'hourli' in the schedule \(redbeat:\* in redis://127.0.0.1:6379/15\); "
        r"`beat_schedule list` shows them\. Did you mean 'hourly'\?"
    )
    for action in ("show", "run", "pause", "resume"):
        with pytest.raises(CommandError, match=expected):
            cli(action, "hourli")
    # The real command line: exit status 1 and one line, no traceback (the backend app reads the same test DB).
    proc = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "beat_schedule", "pause", "nope"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith("CommandError: no entry named 'nope' in the schedule (redbeat:* in redis://")
    assert "Traceback" not in proc.stderr and "`beat_schedule list` shows them" in proc.stderr


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


def test_an_idle_tick_is_still_one_round_trip(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beat = beats(make_app({"hourly": dict(ENTRIES["hourly"])}))  # nothing falls due between the two ticks
    beat.tick()
    calls: list[object] = []
    execute = beat.store.client.execute_command

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args[0])
        return execute(*args, **kwargs)

    beat.store.client.execute_command = counting  # type: ignore[method-assign]
    beat.tick()
    assert calls == ["EVALSHA"]


def test_a_real_worker_runs_a_request_published_twice_once(
    redis_dbs: None, monkeypatch: pytest.MonkeyPatch, start_worker: Callable[..., Worker]
) -> None:
    record = "alarm_backends.service.scheduler.tasks.cron.tests_integration_jobs_record_effect"
    rec = {"task": record, "schedule": schedule(run_every=dt.timedelta(hours=1)), "options": {"queue": "celery_cron"}}
    app = make_app({"rec": rec}, redbeat_first_run="next")
    monkeypatch.setattr(beat_schedule, "backend_app", lambda: app)
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
    assert get_client(SERVICE).get(f"bkmonitorv3.default.beat.slot.{task_id}") == "done"
