"""The patched scheduler against the real Redis: layout, faithful behaviours, fencing, effectively-once."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator

import pytest
from celery import Celery
from celery.schedules import crontab, schedule
from prometheus_client import REGISTRY
from redbeat.schedulers import RedBeatSchedulerEntry

from alarm_backends.service.scheduler import dedupe
from alarm_backends.service.scheduler.config import redbeat_key_prefix
from patches.redbeat.controls import Controls
from patches.redbeat.entries import decode_meta, encode_meta
from patches.redbeat.policy import from_epoch
from patches.redbeat.publisher import LeaseExpiredError
from patches.redbeat.schedulers import RedBeatScheduler
from patches.redbeat.store import LostLockError, Update
from tests.integration.redbeat_helpers import ids, make_app, published, snapshot, store

pytestmark = pytest.mark.redis

EVERY_MINUTE = {"task": "t.minutely", "schedule": crontab(minute="*")}
HOURLY = {"task": "t.hourly", "schedule": schedule(run_every=dt.timedelta(hours=1))}


@pytest.fixture(autouse=True)
def clean(redis_dbs: None) -> Iterator[None]:
    yield


def test_layout_sync_and_never_run_entries_fire_at_once() -> None:
    app = make_app({"a": EVERY_MINUTE, "h": HOURLY})
    beat = RedBeatScheduler(app=app)
    beat.tick()
    client = store()
    assert client.get("redbeat::lock") == beat.token
    assert client.smembers("redbeat::statics") == {"a", "h"}
    assert {k for k, _ in client.zrange("redbeat::schedule", 0, -1, withscores=True)} == {"redbeat:a", "redbeat:h"}
    # Stock celery-redbeat reads the entries this scheduler wrote.
    stock = RedBeatSchedulerEntry.from_key("redbeat:a", app=app)
    assert (stock.task, stock.schedule) == ("t.minutely", crontab(minute="*"))
    # Never run → fired on the first tick, one message each, ids <name>@<due epoch>.
    queue = app.conf.task_default_queue
    assert sorted(i.split("@")[0] for i in ids(queue)) == ["a", "h"]
    last_run_at, total = decode_meta(client.hget("redbeat:h", "meta"))
    assert total == 1 and last_run_at is not None
    # Next due: an hour after that run.
    score = client.zscore("redbeat::schedule", "redbeat:h")
    assert score == pytest.approx(last_run_at.timestamp() + 3600, abs=1)
    beat.close()
    assert client.get("redbeat::lock") is None  # released on a clean stop


def test_restart_keeps_last_run_and_prunes_stale_statics() -> None:
    first = RedBeatScheduler(app=make_app({"a": EVERY_MINUTE, "h": HOURLY}))
    first.tick()
    first.close()
    app = make_app({"h": HOURLY})
    second = RedBeatScheduler(app=app)
    second.tick()
    client = store()
    assert client.smembers("redbeat::statics") == {"h"}
    assert not client.exists("redbeat:a")
    assert client.zscore("redbeat::schedule", "redbeat:a") is None
    assert ids(app.conf.task_default_queue) == []  # h ran before the restart: not again
    assert decode_meta(client.hget("redbeat:h", "meta"))[1] == 1
    second.close()


def overdue(app_schedule: dict[str, dict[str, object]], minutes: int) -> tuple[RedBeatScheduler, str]:
    """A beat whose entries last ran ``minutes`` ago and whose leader then died (so every slot since was missed):
    the last commit left each entry's meta at that run and its score at the slot after it."""
    seeding = RedBeatScheduler(app=make_app(app_schedule))
    seeding.tick()
    seeding.close()
    past = from_epoch(dt.datetime.now(dt.UTC).timestamp() - minutes * 60)
    for name in app_schedule:
        store().hset(f"redbeat:{name}", "meta", encode_meta(past, 1))
        store().zadd("redbeat::schedule", {f"redbeat:{name}": (int(past.timestamp()) // 60 + 1) * 60})
    app = make_app(app_schedule)
    return RedBeatScheduler(app=app), app.conf.task_default_queue


def test_overdue_entry_fires_once() -> None:
    beat, queue = overdue({"a": EVERY_MINUTE}, minutes=10)
    beat.tick()
    (only,) = ids(queue)
    slot = int(only.split("@")[1])
    assert slot % 60 == 0 and dt.datetime.now(dt.UTC).timestamp() - slot > 8 * 60  # the first missed slot
    assert store().zscore("redbeat::schedule", "redbeat:a") > dt.datetime.now(dt.UTC).timestamp()
    beat.close()


def test_missed_run_policies_skip_and_all() -> None:
    entries = {
        "s": {**EVERY_MINUTE, "missed_run": {"policy": "skip", "grace": 30}},
        "c": {**EVERY_MINUTE, "missed_run": {"policy": "all", "max_catchup": 3}},
    }
    beat, queue = overdue(entries, minutes=10)
    beat.tick()
    sent = ids(queue)
    assert not [i for i in sent if i.startswith("s@")]
    caught_up = sorted(int(i.split("@")[1]) for i in sent if i.startswith("c@"))
    assert len(caught_up) == 3 and caught_up[1] - caught_up[0] == 60 and caught_up[2] - caught_up[1] == 60
    beat.close()


def test_entries_carry_their_tasks_queue_and_expires() -> None:
    app = make_app({"q": {"task": "t.queued", "schedule": crontab(minute="*")}})

    @app.task(name="t.queued", queue="bkm-test-q-expires", expires=300)
    def queued() -> None:
        """A task whose queue and expires are attributes, as the cron loader makes them."""

    beat = RedBeatScheduler(app=app)
    beat.tick()
    (message,) = published("bkm-test-q-expires")
    expires = dt.datetime.fromisoformat(message["headers"]["expires"]).timestamp()
    assert expires == pytest.approx(dt.datetime.now(dt.UTC).timestamp() + 300, abs=5)
    assert message["headers"]["id"].startswith("q@")
    assert app.conf.beat_schedule["q"].get("options", {}) == {}
    beat.close()


def test_a_beat_that_lost_the_lock_changes_nothing() -> None:
    app = make_app({"a": EVERY_MINUTE, "h": HOURLY})
    old = RedBeatScheduler(app=app)
    old.tick()
    # Another beat takes over after the old one's lease lapsed (here: the lock is simply replaced).
    store().set("redbeat::lock", "another-beat", px=3000)
    before = snapshot()
    assert old.tick() == old.conf.standby_interval
    assert not old.leading
    with pytest.raises(LostLockError):
        old.store.commit(old.token, [Update("redbeat:a", 1.0, encode_meta(None))])
    with pytest.raises(LostLockError):
        old.store.seed(old.token, ["h"], [])
    assert not old.store.renew(old.token, 3) and not old.store.release(old.token)
    # Only the beats seen change: a stopping beat leaves them whoever holds the lock (presence, not schedule state).
    [(seen, _)] = before.pop("redbeat::beats")
    assert seen == old.token and snapshot() == before


def test_a_crash_between_publish_and_commit_republishes_the_same_ids_and_workers_run_them_once() -> None:
    app = make_app({"a": EVERY_MINUTE, "h": HOURLY})
    crashing = RedBeatScheduler(app=app)

    def crash(token: str, updates: object) -> int:
        raise SystemExit("killed between publish and commit")

    crashing.store.commit = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        crashing.tick()
    first = sorted(ids(app.conf.task_default_queue))
    store().delete("redbeat::lock")  # its lease runs out
    successor = RedBeatScheduler(app=app)
    successor.tick()
    every = sorted(ids(app.conf.task_default_queue))
    assert len(first) == 2 and every == sorted(first * 2)  # nothing lost; the same slots again
    runs = [dedupe.claim("t", task_id, 60, redelivered=False) for task_id in every]
    assert runs.count(True) == 2  # each slot runs once
    successor.close()


def test_standby_takes_over_on_the_next_tick_after_a_clean_stop() -> None:
    app = make_app({"h": HOURLY})
    leader, standby = RedBeatScheduler(app=app), RedBeatScheduler(app=app)
    leader.tick()
    assert standby.tick() == 1.0 and not standby.leading
    leader.close()
    assert store().hget("redbeat::leader", "released") == "1"
    failovers = REGISTRY.get_sample_value("bkmonitor_beat_failovers_total")
    standby.tick()
    assert standby.leading and store().get("redbeat::lock") == standby.token
    # A hand-over, not a failover: the leader gave the lock up.
    assert REGISTRY.get_sample_value("bkmonitor_beat_failovers_total") == failovers
    record = store().hgetall("redbeat::leader")
    assert (record["token"], record["previous"], record["terms"], record["released"]) == (
        standby.token,
        leader.token,
        "2",
        "0",
    )
    standby.close()


def test_two_clusters_on_one_redis_keep_their_own_schedules() -> None:
    default_app = make_app({"a": EVERY_MINUTE}, prefix=redbeat_key_prefix("redbeat:", "default"))
    blue_app = make_app({"b": HOURLY}, prefix=redbeat_key_prefix("redbeat:", "blue"))
    default_beat, blue_beat = RedBeatScheduler(app=default_app), RedBeatScheduler(app=blue_app)
    default_beat.tick()
    blue_beat.tick()
    assert default_beat.leading and blue_beat.leading  # one lock each
    client = store()
    assert client.smembers("redbeat::statics") == {"a"}
    assert client.smembers("redbeat:blue::statics") == {"b"}
    default_beat.close()
    RedBeatScheduler(app=make_app({"a": EVERY_MINUTE})).tick()  # a re-sync of the default cluster...
    assert client.exists("redbeat:blue:b")  # ...prunes nothing of the blue one
    assert json.loads(client.hget("redbeat:blue:b", "definition"))["task"] == "t.hourly"
    blue_beat.close()


@pytest.mark.rabbitmq
def test_publishing_to_rabbitmq_awaits_publisher_confirms_per_batch(rabbitmq_vhost: str) -> None:
    from kombu import Connection

    entries = {f"e{i:03d}": EVERY_MINUTE for i in range(250)}
    broker_url = f"amqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost}"
    app = make_app(entries, broker_url=broker_url, redbeat_publish_chunk=100)
    beat = RedBeatScheduler(app=app)
    before = dt.datetime.now(dt.UTC).timestamp()
    beat.tick()
    publisher = beat._publisher
    assert publisher is not None and publisher.confirms
    confirms = publisher._confirms
    assert confirms is not None and confirms.published == 250 and confirms.acked_upto == 250
    with Connection(broker_url) as connection:
        _, depth, _ = connection.default_channel.queue_declare(app.conf.task_default_queue, passive=True)
    assert depth == 250
    # Every entry moved on to a slot after the tick: after the time it started (read later, "now" could already be
    # past a minute boundary the tick's next slots stood on).
    assert len(store().zrangebyscore("redbeat::schedule", f"({before}", "+inf")) == 250
    beat.close()


def test_a_skewed_host_clock_neither_fires_early_nor_late(monkeypatch: pytest.MonkeyPatch) -> None:
    """Due times are compared with the Redis server's clock, not the host's (the original assumed synced hosts)."""
    first = RedBeatScheduler(app=make_app({"h": HOURLY}))
    first.tick()  # runs h now; next due in an hour by the server's clock
    first.close()
    real_time = time.time
    # This host's clock runs an hour and a half minute ahead: by it, h is overdue.
    monkeypatch.setattr(time, "time", lambda: real_time() + 3630)
    monkeypatch.setattr(Celery, "now", lambda self: dt.datetime.fromtimestamp(time.time(), tz=dt.UTC))
    app = make_app({"h": HOURLY})
    standby = RedBeatScheduler(app=app)
    standby.tick()
    assert standby.leading
    assert ids(app.conf.task_default_queue) == []  # a host-clock scheduler would fire h now
    standby.close()


def test_the_leader_keeps_its_lease_by_renewing_it() -> None:
    app = make_app({"h": HOURLY}, lock_timeout=3)
    beat = RedBeatScheduler(app=app)
    deadline = time.monotonic() + 4.5  # longer than the TTL: without renewals the lock would lapse
    while time.monotonic() < deadline:
        beat.tick()
        assert beat.leading
        # Not a wait for anything: the pause a running beat makes between ticks. The lease runs out on Redis's
        # clock, so the window has to pass for real for the renewals to be what keeps it.
        time.sleep(0.4)
    assert store().get("redbeat::lock") == beat.token
    assert store().pttl("redbeat::lock") > 3000 - 1000 - 500  # renewed within the last third of the TTL
    beat.close()


def test_new_entries_can_wait_for_their_first_slot() -> None:
    app = make_app({"a": EVERY_MINUTE}, redbeat_first_run="next")
    beat = RedBeatScheduler(app=app)
    beat.tick()
    assert ids(app.conf.task_default_queue) == []
    score = store().zscore("redbeat::schedule", "redbeat:a")
    assert score % 60 == 0 and 0 < score - time.time() <= 60
    beat.close()
    with pytest.raises(ValueError, match="redbeat_first_run='later'"):
        RedBeatScheduler(app=make_app({}, redbeat_first_run="later"))


def test_a_leader_that_stepped_down_on_a_redis_error_leads_again_at_once(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app({"h": HOURLY})
    beat, other = RedBeatScheduler(app=app), RedBeatScheduler(app=app)
    beat.tick()
    beat._step_down("Redis error: simulated")  # what a failed round trip does; the lock still holds its token
    assert other.tick() == other.conf.standby_interval and not other.leading
    caplog.set_level(logging.INFO, logger="celery.beat")
    beat.tick()
    assert beat.leading and store().get("redbeat::lock") == beat.token
    # Not a new term: the lock never left it.
    assert "beat: acquired the lock redbeat::lock (still this beat's, ttl 3s): leading" in caplog.messages
    assert store().hget("redbeat::leader", "terms") == "1"
    beat.close()


def test_a_restart_keeps_the_committed_score() -> None:
    first = RedBeatScheduler(app=make_app({"h": HOURLY}))
    first.tick()
    first.close()
    store().zadd("redbeat::schedule", {"redbeat:h": 4102444800.0})  # the score the last leader committed
    second = RedBeatScheduler(app=make_app({"h": HOURLY}))
    second.tick()
    assert store().zscore("redbeat::schedule", "redbeat:h") == 4102444800.0
    second.close()
    changed = RedBeatScheduler(app=make_app({"h": {**HOURLY, "args": ("new",)}}))
    changed.tick()  # a changed definition is rescheduled from its meta
    assert store().zscore("redbeat::schedule", "redbeat:h") < 4102444800.0
    changed.close()


def test_a_broken_entry_is_parked_and_does_not_block_the_others() -> None:
    first = RedBeatScheduler(app=make_app({"a": EVERY_MINUTE, "b": EVERY_MINUTE}))
    first.tick()
    first.close()
    client = store()
    client.hset("redbeat:b", "definition", "{not json")
    client.hset("redbeat:b", "meta", "garbage")
    client.zadd("redbeat::schedule", {"redbeat:a": 1.0, "redbeat:b": 0.5})  # both due, b first
    app = make_app({"a": EVERY_MINUTE})  # b is a dynamic entry now: the sync leaves it alone
    beat = RedBeatScheduler(app=app)
    client.srem("redbeat::statics", "b")
    beat.tick()
    assert beat.leading
    assert [i.split("@")[0] for i in ids(app.conf.task_default_queue)] == ["a"]
    assert client.zscore("redbeat::schedule", "redbeat:b") > time.time() + 30  # parked, retried later
    beat.close()


def test_an_unreadable_meta_does_not_stop_the_sync() -> None:
    first = RedBeatScheduler(app=make_app({"h": HOURLY}))
    first.tick()
    first.close()
    store().hset("redbeat:h", "meta", "garbage")
    store().zrem("redbeat::schedule", "redbeat:h")
    app = make_app({"h": HOURLY})
    beat = RedBeatScheduler(app=app)
    beat.tick()
    assert beat.leading and [i.split("@")[0] for i in ids(app.conf.task_default_queue)] == ["h"]
    beat.close()


def test_a_lease_that_runs_out_mid_chunk_stops_the_chunk() -> None:
    # A beat frozen in the middle of a chunk must not send the rest of it once it runs again.
    app = make_app({"a": EVERY_MINUTE})
    beat = RedBeatScheduler(app=app)
    template = beat.templates.get("t.minutely", (), {}, {})
    answers = iter([True, True, False])
    with pytest.raises(LeaseExpiredError, match="after 2 message"):
        beat._get_publisher().send([(template, f"a@{i}") for i in range(5)], time.time(), lambda: next(answers))
    assert ids(app.conf.task_default_queue) == ["a@0", "a@1"]
    beat.close()


def test_every_decision_is_logged_once_with_the_entry_and_its_due_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="celery.beat")
    beat, queue = overdue({"a": EVERY_MINUTE}, minutes=10)
    caplog.clear()  # the seeding beat's lines
    beat.tick()
    (task_id,) = ids(queue)
    slot = int(task_id.split("@")[1])
    due = dt.datetime.fromtimestamp(slot, tz=dt.UTC).isoformat(timespec="milliseconds")
    lines = [r.getMessage() for r in caplog.records]
    # The seeding beat released the lock: a hand-over, not a failover.
    assert lines.count("beat: acquired the lock redbeat::lock (free, ttl 3s): leading") == 1
    assert lines.count(f"beat: claimed 1 due entry and 0 run-now request(s), the oldest due {due}") == 1
    [sent] = [line for line in lines if line.startswith("Scheduler: Sent due task a@")]
    assert sent.startswith(f"Scheduler: Sent due task {task_id} (t.minutely): due {due}, late ")
    assert float(sent.rpartition("late ")[2].rstrip("s")) > 8 * 60

    # An operator's run-now request: its own line, with the time it was asked for.
    caplog.clear()
    requested = Controls(beat.store).request_run("a").stamp
    assert requested is not None
    beat.tick()
    asked = dt.datetime.fromtimestamp(requested / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")
    lines = [r.getMessage() for r in caplog.records]
    assert f"Scheduler: Sent due task a@{requested} (t.minutely): run now, requested {asked}" in lines
    assert "beat: claimed 0 due entries and 1 run-now request(s)" in lines

    # Published but not committed (the lock went to another beat meanwhile): said once per run, with its id.
    caplog.clear()
    store().zadd("redbeat::schedule", {"redbeat:a": slot})
    store().set("redbeat::lock", beat.token, px=3000)

    def lost(token: str, updates: object) -> int:
        raise LostLockError("redbeat::lock")

    beat.store.commit = lost  # type: ignore[method-assign]
    beat.tick()
    lines = [r.getMessage() for r in caplog.records]
    assert [line for line in lines if "was sent but not committed" in line] == [
        f"beat: {task_id} ({due}) was sent but not committed (the commit failed: redbeat::lock): "
        "it goes out again under the same id"
    ]
    assert "beat: lost leadership (the lock is held by another beat): standing by" in lines
    beat.close()
