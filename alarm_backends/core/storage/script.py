"""A Lua script that a worker runs on every scheduled run, called with as little as possible around the round trip.

redis-py's ``Script.__call__`` goes through ``execute_command``: a connection taken from the pool and given back,
the retry wrapper, the observability hooks, the response callbacks. For the two scripts a worker runs per scheduled
run (``dedupe``'s claim and finish) that came to about 40 µs of CPU per call on top of a ~60 µs loopback round trip
(bench/worker_cost.py). :class:`DirectScript` keeps one connection of the client's pool per process and thread
and sends ``EVALSHA`` on it directly, with what redis-py's path gives that matters here: the script's source sent
when the server lacks it (NOSCRIPT), and one retry on a new connection when the connection fails (a restarted
Redis, a Sentinel failover, an idle connection the network dropped); errors are redis-py's own.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError


class DirectScript:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        self._local = threading.local()

    def __call__(self, client: redis.Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return self._run(client, keys, args)
        except (redis.ConnectionError, redis.TimeoutError):
            self._drop()
            return self._run(client, keys, args)  # once more, on a new connection; a second failure is raised

    def _run(self, client: redis.Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        connection = self._connection(client)
        try:
            connection.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
            return connection.read_response()
        except NoScriptError:  # a server that restarted, or flushed its scripts: the source, once
            connection.send_command("EVAL", self.source, len(keys), *keys, *args)
            return connection.read_response()

    def _connection(self, client: redis.Redis) -> AbstractConnection:
        """This thread's connection from ``client``'s pool (a forked child takes a new one: a socket is never shared
        with the parent)."""
        local, pid, pool = self._local, os.getpid(), client.connection_pool
        connection: AbstractConnection | None = getattr(local, "connection", None)
        if connection is None or local.pid != pid or local.pool is not pool:
            connection = pool.get_connection()  # connects: a server that is down raises here, and nothing is kept
            local.pid, local.pool, local.connection = pid, pool, connection
        return connection

    def _drop(self) -> None:
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is not None and local.pid == os.getpid():
            connection.disconnect()
            local.pool.release(connection)
        local.pid = local.pool = local.connection = None
