"""A Lua script that a worker runs on every scheduled run, called with as little as possible around the round trip.

redis-py's ``Script.__call__`` goes through ``execute_command``: a connection taken from the pool and given back
(with a poll of its socket each time), the retry wrapper, the observability hooks, the response callbacks. For the
two scripts a worker runs per scheduled run (``dedupe``'s claim and finish) that came to about 40 µs of CPU per
call on top of a ~60 µs loopback round trip (bench/worker_cost.py). :class:`DirectScript` sends ``EVALSHA`` on a
connection the process holds, with what redis-py's path gives that matters here: the script's source sent when the
server lacks it (NOSCRIPT), and one retry on a new connection when the connection fails (a restarted Redis, a
Sentinel failover, an idle connection the network dropped); errors are redis-py's own.

Connections are held per process and per client pool, one per caller at a time: a prefork pool process reuses
one; threads or greenlets (``-P gevent``, where ``threading.local`` is per greenlet and Celery starts a greenlet per
task) take an idle one or a new one and give it back, so their number is bounded by the concurrency.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from redis.connection import AbstractConnection, Connection, ConnectionPool
from redis.exceptions import NoScriptError

T = TypeVar("T")
_Action = Callable[[AbstractConnection], T]
# A connection failure: the call is sent once more, on a new connection. Other errors are the server's answer.
_BROKEN = (redis.ConnectionError, redis.TimeoutError)


class DirectScript:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    def __call__(self, client: redis.Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """The script's reply; redis-py's error when it fails (a connection twice, or the script itself)."""
        return _HELD.use(client.connection_pool, lambda connection: self._run(connection, keys, args))

    def _run(self, connection: AbstractConnection, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        connection.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return connection.read_response()
        except NoScriptError:  # a server that restarted, or flushed its scripts: the source, once
            connection.send_command("EVAL", self.source, len(keys), *keys, *args)
            return connection.read_response()


class _Held:
    """A connection of ``pool`` that the process holds."""

    __slots__ = ("connection", "pool")

    def __init__(self, pool: ConnectionPool) -> None:
        self.connection: Connection = pool.get_connection()  # connects: raises when the server is down
        # Weak: a pool nobody uses any more is collected, and its held connections with it.
        self.pool = weakref.ref(pool)

    def discard(self) -> None:
        self.connection.disconnect()
        pool = self.pool()
        if pool is not None:
            pool.release(self.connection)


class _Connections:
    """The connections held in this process, per pool: idle ones are taken for a call and given back after it."""

    def __init__(self) -> None:
        self._forked()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """A forked child starts with none: it never uses a socket of its parent's (and a lock another thread held
        at the fork is not held in the child)."""
        self._lock = threading.Lock()
        self._idle: weakref.WeakKeyDictionary[ConnectionPool, list[_Held]] = weakref.WeakKeyDictionary()

    def use(self, pool: ConnectionPool, action: _Action[T]) -> T:
        """``action`` on a held connection; on a broken connection once more, on a new one."""
        try:
            return self._once(pool, action)
        except _BROKEN:
            return self._once(pool, action)

    def _once(self, pool: ConnectionPool, action: _Action[T]) -> T:
        held = self._take(pool)
        try:
            result = action(held.connection)
        except _BROKEN:
            held.discard()
            raise
        except BaseException:
            self._give_back(pool, held)
            raise
        self._give_back(pool, held)
        return result

    def _take(self, pool: ConnectionPool) -> _Held:
        with self._lock:
            idle = self._idle.get(pool)
            if idle:
                return idle.pop()
        return _Held(pool)

    def _give_back(self, pool: ConnectionPool, held: _Held) -> None:
        with self._lock:
            self._idle.setdefault(pool, []).append(held)


_HELD = _Connections()
