"""``storage.script.DirectScript`` (the worker's claim and finish scripts) against real Redis, with redis-py's own
``Script`` as the oracle for what a call returns, and the failures redis-py's path survives: a server that lost its
scripts, a connection the server closed, a forked child. The connections the process holds are read from the
server's ``CLIENT LIST`` (by the client name the test gives them), not from the code under test."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from alarm_backends.core.storage.script import DirectScript
from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_DB_PLAN
from tests.net import free_port

pytestmark = pytest.mark.redis

SOURCE = """
if ARGV[1] == 'boom' then return redis.error_reply('ERR boom') end
redis.call('SET', KEYS[1], ARGV[1])
return {redis.call('GET', KEYS[1]), redis.call('INCR', KEYS[2]), tonumber(ARGV[2]) + 1}
"""
DB = TEST_DB_PLAN["service"]
NAME = "bkm-test-direct-script"
KEYS = ["bkm:t:a", "bkm:t:n"]


def client() -> Any:
    """The client the scripts run on: its connections carry NAME, so the server can list them."""
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DB, decode_responses=True, client_name=NAME)


def observer() -> Any:
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DB, decode_responses=True)


def held_ids() -> list[int]:
    """The server's ids of the connections named NAME, oldest first."""
    return sorted(int(c["id"]) for c in observer().client_list() if c.get("name") == NAME)


@pytest.fixture(autouse=True)
def _no_connection_left_behind() -> Any:
    yield
    for found in held_ids():  # a test's held connections die with it, never a later test's business
        observer().client_kill_filter(_id=found)


def test_replies_as_redis_pys_script_does(redis_dbs: None) -> None:
    c = client()
    direct = DirectScript(SOURCE)(c, KEYS, ["x", 41])
    oracle = observer().register_script(SOURCE)(keys=KEYS, args=["x", 41])
    assert direct == ["x", 1, 42] and oracle == ["x", 2, 42]  # same shape and types; INCR ran once per call


def test_a_server_without_the_script_is_sent_its_source(redis_dbs: None) -> None:
    c, script = client(), DirectScript(SOURCE)
    assert script(c, KEYS, ["x", 1])[0] == "x"
    observer().script_flush()
    assert observer().script_exists(script.sha) == [False]
    assert script(c, KEYS, ["y", 1])[0] == "y"
    assert observer().script_exists(script.sha) == [True]  # EVAL cached it again


def test_a_connection_the_server_closed_is_replaced_once(redis_dbs: None) -> None:
    c, script = client(), DirectScript(SOURCE)
    script(c, KEYS, ["x", 1])
    [killed] = held_ids()
    assert observer().client_kill_filter(_id=killed) == 1
    assert script(c, KEYS, ["z", 1])[0] == "z"
    assert held_ids() not in ([], [killed])  # a new connection, and only that one


def test_a_server_that_stays_down_fails_every_call_with_redis_pys_error(redis_dbs: None) -> None:
    """Both tries fail (no server on the port): the call raises ConnectionError, and so does the next one, never
    anything else (the claim falls back to running the job only on redis-py's errors)."""
    # redis-py's own connect retries off (its backoff is not what is tested): each try is one refused connect.
    down = redis.Redis(host=REDIS_HOST, port=free_port(), db=DB, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    script = DirectScript(SOURCE)
    for _ in range(3):
        with pytest.raises(redis.ConnectionError):
            script(down, KEYS, ["x", 1])
    assert script(client(), KEYS, ["back", 1])[0] == "back"  # and it recovers


def test_a_forked_child_uses_a_connection_of_its_own(redis_dbs: None) -> None:
    c, script = client(), DirectScript(SOURCE)
    script(c, KEYS, ["parent", 1])
    [parent_id] = held_ids()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the connections the server then sees, then leave at once
        try:
            ok = script(c, KEYS, ["child", 1])[0] == "child"
            os.write(write, (" ".join(map(str, held_ids())) if ok else "failed").encode())
        finally:
            os._exit(0)
    os.close(write)
    seen = os.read(read, 256).decode()
    os.waitpid(pid, 0)
    assert seen != "failed" and len(seen.split()) == 2 and str(parent_id) in seen.split()
    assert script(c, KEYS, ["parent", 1])[:2] == ["parent", 3]
    assert held_ids() == [parent_id]  # on the parent's own connection, still


def test_threads_share_a_bounded_set_of_connections(redis_dbs: None) -> None:
    """Each call takes an idle held connection and gives it back: 40 short-lived threads one after the other hold
    one connection between them (``threading.local`` gave each thread its own, never given back to the pool, a leak
    per greenlet under ``-P gevent``); 8 at once hold at most 8."""
    c, script = client(), DirectScript(SOURCE)
    for n in range(40):
        thread = threading.Thread(target=script, args=(c, KEYS, [f"t{n}", 1]))
        thread.start()
        thread.join()
    assert len(held_ids()) == 1
    barrier = threading.Barrier(8)

    def together(n: int) -> None:
        barrier.wait(timeout=10)
        for _ in range(20):
            script(c, KEYS, [f"p{n}", 1])

    threads = [threading.Thread(target=together, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= len(held_ids()) <= 8
    assert observer().get(KEYS[1]) == str(40 + 8 * 20)


GREENLETS = f"""
from gevent import monkey
monkey.patch_all()
import gevent, redis
from alarm_backends.core.storage.script import DirectScript
c = redis.Redis(host={REDIS_HOST!r}, port={REDIS_PORT}, db={DB}, decode_responses=True, client_name={NAME!r})
script = DirectScript({SOURCE!r})
for n in range(40):  # as Celery's gevent pool runs tasks: a greenlet each
    gevent.spawn(script, c, {KEYS!r}, [f"g{{n}}", 1]).join()
print(sum(1 for conn in c.client_list() if conn.get("name") == {NAME!r}))
"""


def test_greenlets_share_a_held_connection(redis_dbs: None) -> None:
    """The same under gevent's monkey-patching (``-P gevent``, the API crontab's worker), in a process of its own:
    40 greenlets one after the other leave one held connection (and the one CLIENT LIST used), not 40."""
    done = subprocess.run([sys.executable, "-c", GREENLETS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) == 2


def test_a_claim_sent_again_after_a_lost_reply_is_the_same_claim(redis_dbs: None) -> None:
    """claim.lua with the marker of one claim: a retry (its first reply lost) is claimed again, not a duplicate; a
    second delivery's claim is a duplicate, and a redelivery takes over an unfinished run, old marker or new."""
    from alarm_backends.service.scheduler import dedupe

    c, key = client(), dedupe.claim_key("job@1")

    def claim(marker: str, redelivered: int = 0) -> str:
        return str(dedupe.CLAIM(c, [key], [marker, 60, "", redelivered])[0])

    assert claim("running:aaa") == "claimed"
    assert claim("running:aaa") == "claimed"  # the same claim, sent again
    assert claim("running:bbb") == "duplicate"  # another delivery of the slot
    assert claim("running:bbb", redelivered=1) == "taken_over"  # its run never finished
    c.set(key, "running")  # the marker of a worker from before unique markers
    assert claim("running:ccc", redelivered=1) == "taken_over"
    c.set(key, dedupe.DONE)
    assert claim("running:ddd", redelivered=1) == "duplicate"
