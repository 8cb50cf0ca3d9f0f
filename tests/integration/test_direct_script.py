"""``storage.script.DirectScript`` (the worker's claim and finish scripts) against real Redis, with redis-py's own
``Script`` as the oracle for what a call returns, and the failures redis-py's path survives: a server that lost its
scripts, a connection the server closed, a forked child."""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis

from alarm_backends.core.storage.script import DirectScript
from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_DB_PLAN
from tests.net import free_port

pytestmark = pytest.mark.redis

SOURCE = """
redis.call('SET', KEYS[1], ARGV[1])
return {redis.call('GET', KEYS[1]), redis.call('INCR', KEYS[2]), tonumber(ARGV[2]) + 1}
"""
DB = TEST_DB_PLAN["service"]


def client() -> Any:
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DB, decode_responses=True)


def call_both(script: DirectScript, c: Any, value: str) -> tuple[Any, Any]:
    direct = script(c, ["bkm:t:a", "bkm:t:n"], [value, 41])
    oracle = c.register_script(SOURCE)(keys=["bkm:t:a", "bkm:t:n"], args=[value, 41])
    return direct, oracle


def test_replies_as_redis_pys_script_does(redis_dbs: None) -> None:
    c = client()
    direct, oracle = call_both(DirectScript(SOURCE), c, "x")
    assert direct == ["x", 1, 42] and oracle == ["x", 2, 42]  # same shape and types; INCR ran once per call


def test_a_server_without_the_script_is_sent_its_source(redis_dbs: None) -> None:
    c, script = client(), DirectScript(SOURCE)
    assert script(c, ["bkm:t:a", "bkm:t:n"], ["x", 1])[0] == "x"
    c.script_flush()
    assert c.script_exists(script.sha) == [False]
    assert script(c, ["bkm:t:a", "bkm:t:n"], ["y", 1])[0] == "y"
    assert c.script_exists(script.sha) == [True]  # EVAL cached it again


def test_a_connection_the_server_closed_is_replaced_once(redis_dbs: None) -> None:
    c, script = client(), DirectScript(SOURCE)
    script(c, ["bkm:t:a", "bkm:t:n"], ["x", 1])
    killed = _client_id(c, script._local.connection)
    assert c.client_kill_filter(_id=killed) == 1
    assert script(c, ["bkm:t:a", "bkm:t:n"], ["z", 1])[0] == "z"
    assert _client_id(c, script._local.connection) != killed  # a new connection


def test_a_server_that_stays_down_fails_every_call_with_redis_pys_error(redis_dbs: None) -> None:
    """Both tries fail (no server on the port): the call raises ConnectionError, and so does the next one, never
    anything else (the claim falls back to running the job only on redis-py's errors)."""
    down = redis.Redis(host=REDIS_HOST, port=free_port(), db=DB, socket_connect_timeout=1)
    script = DirectScript(SOURCE)
    for _ in range(3):
        with pytest.raises(redis.ConnectionError):
            script(down, ["bkm:t:a", "bkm:t:n"], ["x", 1])
    assert script(client(), ["bkm:t:a", "bkm:t:n"], ["back", 1])[0] == "back"  # and it recovers


def test_a_forked_child_uses_a_connection_of_its_own(redis_dbs: None) -> None:
    c, script = client(), DirectScript(SOURCE)
    script(c, ["bkm:t:a", "bkm:t:n"], ["parent", 1])
    parent_id = _client_id(c, script._local.connection)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the server's id of the connection it used, then leave at once
        try:
            script(c, ["bkm:t:a", "bkm:t:n"], ["child", 1])
            os.write(write, str(_client_id(c, script._local.connection)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child_id = int(os.read(read, 64) or b"0")
    os.waitpid(pid, 0)
    assert child_id and child_id != parent_id
    assert script(c, ["bkm:t:a", "bkm:t:n"], ["parent", 1])[0] == "parent"  # the parent's connection still works
    assert _client_id(c, script._local.connection) == parent_id


def _client_id(c: Any, connection: Any) -> int:
    """The server's id of ``connection``: CLIENT ID sent on it."""
    connection.send_command("CLIENT", "ID")
    return int(connection.read_response())


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
