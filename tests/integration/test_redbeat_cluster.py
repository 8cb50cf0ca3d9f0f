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
import itertools
import logging
import time
from collections.abc import Iterator

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
        # schedule runs once for all it missed) as soon as it was over. Missing: the slots strictly between two runs.
        missing = [slot for a, b in itertools.pairwise(slots) for slot in range(a + 1, b)]
        assert all(killed - 1 < slot < resumed + 1 for slot in missing), (missing, killed, resumed)
        assert slots[-1] - slots[0] >= 6, slots
