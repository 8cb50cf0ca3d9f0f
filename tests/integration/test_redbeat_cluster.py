"""The scheduler store on a Redis Cluster, and behind proxies that route a script by the keys it declares.

1. Every script declares every key it touches, checked by Redis itself: each script runs after a prelude that fails
   any command on a key not in its KEYS (a hash-tagged prefix, where the store declares all its keys).
2. A real cluster of the test's own (3 masters, 3 replicas): the schedule runs on it, through a failover of the
   master that holds the schedule's slot (killed between two ticks): no run published twice, and none lost — the
   store's run counts match what was published, since each commit waits for a replica (``redbeat_commit_replicas``)
   and the failover rolls nothing back; the run due during the failover goes out once, when it is over.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.schedules import schedule

from patches.redbeat import store as store_module
from patches.redbeat.client import get_redis
from patches.redbeat.controls import Controls
from patches.redbeat.entries import decode_meta
from patches.redbeat.schedulers import RedBeatScheduler
from tests.integration.conftest import wait_for
from tests.integration.redbeat_helpers import drive, ids, make_app
from tests.integration.redis_cluster import LocalCluster

pytestmark = pytest.mark.redis

PREFIX = "{redbeat}:"
EVERY_SECOND = {"task": "t.each", "schedule": schedule(run_every=dt.timedelta(seconds=1))}
# Shadows `redis` in the script: a command whose first argument is not a declared key fails (TIME takes none).
KEY_CHECK = """
local real_redis = redis
local declared = {}
for _, key in ipairs(KEYS) do declared[key] = true end
local redis = setmetatable({call = function(command, ...)
    if string.upper(command) ~= 'TIME' and not declared[(...)] then
        error('undeclared key ' .. tostring((...)) .. ' in ' .. command)
    end
    return real_redis.call(command, ...)
end}, {__index = real_redis})
"""


@pytest.fixture(autouse=True)
def clean(redis_dbs: None) -> Iterator[None]:
    yield


def test_every_script_declares_every_key_it_touches(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    original = store_module.lua_prelude
    monkeypatch.setattr(store_module, "lua_prelude", lambda: KEY_CHECK + original())
    first = RedBeatScheduler(app=make_app({"a": EVERY_SECOND, "b": EVERY_SECOND, "gone": EVERY_SECOND}, PREFIX))
    first.tick()  # sync (seed), fetch, publish, commit
    first.close()  # release
    app = make_app({"a": EVERY_SECOND, "b": EVERY_SECOND}, PREFIX)
    beat = RedBeatScheduler(app=app)  # prunes "gone"
    controls = Controls(beat.store)
    assert controls.pause("b").changed and controls.resume("b").changed
    assert controls.request_run("a").changed
    with caplog.at_level(logging.WARNING):
        drive(beat, 3.5)
    beat.close()
    assert "undeclared key" not in caplog.text
    sent = collections.Counter(task_id.split("@")[0] for task_id in ids(app.conf.task_default_queue))
    assert sent["a"] >= 3 and sent["b"] >= 3 and "gone" not in sent, sent
    assert "undeclared key" not in str(controls.read())


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    local = LocalCluster()
    try:
        yield local.start()
    finally:
        local.close()


@pytest.mark.timeout(120)
def test_the_schedule_runs_on_a_redis_cluster_through_a_failover_of_its_master(cluster: LocalCluster) -> None:
    names = ["a", "b", "c"]
    app = make_app({name: EVERY_SECOND for name in names}, PREFIX, redbeat_commit_replicas=1)
    # Stock's cluster options: a cluster client built from one node's URL.
    node = f"redis://127.0.0.1:{cluster.ports[0]}/0"
    app.conf.update(redbeat_redis_url=node, redbeat_redis_options={"cluster": True})
    beat = RedBeatScheduler(app=app)
    master = cluster.master_of(PREFIX + ":schedule")
    assert all(cluster.master_of(PREFIX + key) == master for key in ("a", ":lock", ":statics", ":run-now"))
    wait_for(lambda: cluster.acknowledged(PREFIX + ":warm-up"), 10, "the schedule's replica acknowledging writes")
    queue = app.conf.task_default_queue

    drive(beat, 3)
    before = len(ids(queue))
    cluster.kill(master)  # between two ticks: every commit so far reached a replica
    killed = time.time()
    drive(beat, 1)
    assert drive(beat, 30, until=lambda: len(ids(queue)) > before), "nothing published within 30s of the failover"
    resumed = time.time()
    drive(beat, 3)
    counts = {name: decode_meta(str(get_redis(app).hget(PREFIX + name, "meta")))[1] for name in names}
    beat.close()

    sent = ids(queue)
    twice = [task_id for task_id, n in collections.Counter(sent).items() if n > 1]
    assert not twice, twice
    for name in names:
        slots = sorted(int(task_id.split("@")[1]) for task_id in sent if task_id.startswith(name + "@"))
        # Nothing the store committed before the failover was rolled back (each commit reached a replica): its run
        # count is every run published, before and after.
        assert counts[name] == len(slots), (name, counts[name], slots)
        # Every second, but across the failover: the slots due meanwhile went out once, as one run (an interval
        # schedule runs once for all it missed) as soon as it was over. Elsewhere a gap is at most one id: an
        # interval schedule counts from its last run, so a tick a few ms late moves the due times' phase, and when
        # that crosses a whole second one id (the due epoch second) is never due — no run lost, no stall.
        stalls = [(a, b) for a, b in itertools.pairwise(slots) if b - a > 2 and not killed - 2 < a < resumed + 1]
        assert not stalls, (stalls, killed, resumed)
        assert slots[-1] - slots[0] >= 6, slots


def test_the_platforms_cluster_settings_reach_the_cluster_and_its_health_checks(cluster: LocalCluster) -> None:
    """REDBEAT_REDIS_CLUSTER_NODES as the platform turns it into settings (two startup nodes, the prefix tagged):
    the beat leads and publishes on the cluster, and healthz's store and lock checks read it there."""
    from alarm_backends.management.health.checks import OK, beat_lock, scheduler_store
    from alarm_backends.service.scheduler.config import cluster_prefix, cluster_store

    prefix = cluster_prefix("redbeat:")
    app = make_app({"a": EVERY_SECOND, "b": EVERY_SECOND}, prefix)
    app.conf.update(cluster_store([f"127.0.0.1:{port}" for port in cluster.ports[:2]], ""))
    beat = RedBeatScheduler(app=app)
    try:
        beat.tick()
        assert sorted(task_id.split("@")[0] for task_id in ids(app.conf.task_default_queue)) == ["a", "b"]
        node = cluster.client(cluster.master_of(prefix + ":schedule"))
        assert node.zcard(prefix + ":schedule") == 2  # on the master of the tagged slot
        status, detail, data = scheduler_store(app, 2)
        assert (status, data) == (OK, {"entries": 2}), detail
        status, detail, data = beat_lock(app, 2)
        assert status == OK and data["held"] and data["token"] == node.get(prefix + ":lock"), detail
    finally:
        beat.close()


def test_a_schedule_moves_to_the_cluster_with_its_history_pauses_and_requests(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``manage.py beat_store_migrate``: a schedule that ran on a single Redis in the stock layout goes on, on the
    cluster, from where it was: run counts, the pause, the pending run-now request; nothing fires as new."""
    from django.core.management import CommandError, call_command

    from alarm_backends.management.commands import beat_store_migrate
    from alarm_backends.service.scheduler.config import cluster_prefix, cluster_store

    schedule = {"a": EVERY_SECOND, "b": EVERY_SECOND}
    old = make_app(schedule)  # "redbeat:" on the test Redis
    old_beat = RedBeatScheduler(app=old)
    drive(old_beat, 1.5)
    old_beat.close()
    old_store: Any = get_redis(old)  # decoded replies
    assert Controls(old_beat.store).pause("b").changed and Controls(old_beat.store).request_run("a").changed

    prefix = cluster_prefix("redbeat:")
    new = make_app(schedule, prefix, task_default_queue=old.conf.task_default_queue + "-new")
    new.conf.update(cluster_store([f"127.0.0.1:{cluster.ports[0]}"], ""))
    monkeypatch.setattr(beat_store_migrate, "backend_app", lambda: new)
    source = ["--from-url", str(old.conf.redbeat_redis_url), "--from-prefix", "redbeat:"]
    out = io.StringIO()
    call_command("beat_store_migrate", *source, stdout=out)
    assert "copied 2 entries (2 static, 1 with a run-now request) from redbeat:*" in out.getvalue()

    node = cluster.client(cluster.master_of(prefix + ":schedule"))
    for name in schedule:
        assert node.hgetall(prefix + name) == old_store.hgetall("redbeat:" + name)
        assert node.zscore(prefix + ":schedule", prefix + name) == old_store.zscore(
            "redbeat::schedule", "redbeat:" + name
        )
    assert node.smembers(prefix + ":statics") == {"a", "b"}
    assert node.hkeys(prefix + ":run-now") == ["a"]
    # The old beats' lock and leader record stay behind; the new store's record names the copy, which held its lock
    # and gave it up (so the first beat there takes it as a hand-over, not a failover).
    assert node.get(prefix + ":lock") is None
    record = node.hgetall(prefix + ":leader")
    assert record["released"] == "1" and record["token"] != old_store.hget("redbeat::leader", "token")
    with pytest.raises(CommandError, match="already holds 2 entries"):
        call_command("beat_store_migrate", *source, stdout=io.StringIO())

    before = {name: decode_meta(old_store.hget("redbeat:" + name, "meta"))[1] for name in schedule}
    beat = RedBeatScheduler(app=new)
    try:
        drive(beat, 1.5)
        with pytest.raises(CommandError, match="is held"):  # a beat leads on the target: no copy under it
            call_command("beat_store_migrate", *source, "--merge", stdout=io.StringIO())
    finally:
        beat.close()
    sent = ids(new.conf.task_default_queue)
    assert not [task_id for task_id in sent if task_id.startswith("b@")]  # still paused
    a_runs = [task_id for task_id in sent if task_id.startswith("a@")]
    assert a_runs and decode_meta(node.hget(prefix + "a", "meta"))[1] == before["a"] + len(a_runs)
    assert not node.hkeys(prefix + ":run-now")  # the request was served
