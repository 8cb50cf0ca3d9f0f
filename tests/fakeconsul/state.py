"""The fake agent's in-memory state machine: KV store, sessions, raft-like indexes, TTL timers and lock-delays.

No HTTP here, and no threads of its own: every public method is thread-safe (one condition variable guards
everything and is notified on every change, which is what wakes blocking queries), and TTL expiry happens lazily at
the start of every call, in :meth:`FakeConsulState.reap`, and in :meth:`FakeConsulState.run_expiry` (which the
server runs in a background thread so that sessions expire even when nobody asks). The clock is injectable so unit
tests can drive TTLs and lock-delays without sleeping.

Semantics follow Consul's state store and RPC endpoints (``agent/consul/state/{kvs,session}.go``,
``agent/consul/{kvs,session}_endpoint.go``, ``agent/consul/session_ttl.go``).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from tests.fakeconsul.durations import SECOND
from tests.fakeconsul.errors import not_found, server_error
from tests.fakeconsul.kv import KVEntry, KVStore
from tests.fakeconsul.sessions import (
    BEHAVIOR_RELEASE,
    MAX_LOCK_DELAY,
    SERF_HEALTH,
    Session,
    SessionRequest,
    validate_session_request,
)

T = TypeVar("T")

# Consul's blocking-query bounds: no ?wait means 5 minutes, and no query is held longer than 10.
DEFAULT_QUERY_WAIT = 300.0
MAX_QUERY_WAIT = 600.0
# The longest the expiry loop sleeps between checks, so it notices close() and odd clocks promptly.
_EXPIRY_POLL = 1.0


class FakeConsulState:
    def __init__(
        self,
        *,
        node_name: str = "fake-consul",
        datacenter: str = "dc1",
        ttl_multiplier: float = 2.0,
        session_ttl_min: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``ttl_multiplier``: Consul invalidates a TTL session only after ``TTL * 2`` without a renewal
        (``structs.SessionTTLMultiplier``); lower it to make tests faster, at the cost of fidelity.
        ``session_ttl_min``: the server's ``session_ttl_min`` (default 10s), in seconds."""
        self.node_name = node_name
        self.node_id = str(uuid.uuid4())
        self.datacenter = datacenter
        self.ttl_multiplier = ttl_multiplier
        self._ttl_min = round(session_ttl_min * SECOND)
        self._clock = clock
        self._cond = threading.Condition(threading.RLock())
        self._kv = KVStore()
        self._sessions: dict[str, Session] = {}
        self._session_index = 0  # the "sessions" table index
        self._index = 0  # the last raft index
        self._lock_delays: dict[str, float] = {}  # key -> clock time until which ?acquire is refused
        self._closed = False
        self._waiting: collections.Counter[str] = collections.Counter()  # label -> blocking queries parked

    @property
    def index(self) -> int:
        """The last raft index committed."""
        with self._cond:
            return self._index

    def _commit(self) -> int:
        """The raft index for a new write (caller holds the lock)."""
        self._index += 1
        return self._index

    def _changed(self) -> None:
        self._cond.notify_all()

    # -- time: TTL expiry ----------------------------------------------------------------------------------------

    def _expire_due(self) -> None:
        now = self._clock()
        due = sorted((s.expires_at, s.id) for s in self._sessions.values() if s.expires_at is not None)
        for expires_at, session_id in due:
            if expires_at > now:
                break
            self._invalidate(session_id)

    def _seconds_to_next_expiry(self) -> float | None:
        deadlines = [s.expires_at for s in self._sessions.values() if s.expires_at is not None]
        return max(min(deadlines) - self._clock(), 0.0) if deadlines else None

    def reap(self) -> float | None:
        """Invalidate every session whose TTL timer has fired; the seconds until the next one fires, if any."""
        with self._cond:
            self._expire_due()
            return self._seconds_to_next_expiry()

    def run_expiry(self) -> None:
        """Expire sessions on time until :meth:`close` — Consul's per-session timers, as one loop for a thread."""
        with self._cond:
            while not self._closed:
                delay = self.reap()
                self._cond.wait(_EXPIRY_POLL if delay is None else min(delay, _EXPIRY_POLL))

    def close(self) -> None:
        """Release every blocking query now (each answers with what it has) and stop :meth:`run_expiry`."""
        with self._cond:
            self._closed = True
            self._changed()

    def blocking_query(
        self, min_index: int, wait: float | None, query: Callable[[], tuple[int, T]], label: str = ""
    ) -> tuple[int, T]:
        """Consul's blockingQuery: run ``query`` (which returns ``(index, result)``); if ``min_index`` is non-zero,
        re-run it on every change until its index exceeds ``min_index`` or ``wait`` seconds pass, then answer.

        ``wait`` defaults to 5 minutes and is capped at 10. Consul also adds up to wait/16 of random jitter; that is
        left out, so the answer comes at ``wait`` exactly. ``wait`` is real time, whatever the state's clock.
        While it waits for a change the query counts in :meth:`waiting` under ``label`` (the API gives its path).
        """
        timeout = DEFAULT_QUERY_WAIT if not wait else min(wait, MAX_QUERY_WAIT)
        deadline = time.monotonic() + timeout
        parked = False
        with self._cond:
            try:
                while True:
                    self._expire_due()
                    index, result = query()
                    index = max(index, 1)  # an index of 0 would make clients spin instead of block
                    if min_index == 0 or index > min_index or self._closed:
                        return index, result
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return index, result
                    if not parked:
                        parked = True
                        self._waiting[label] += 1
                    next_expiry = self._seconds_to_next_expiry()
                    self._cond.wait(remaining if next_expiry is None else min(remaining, next_expiry + 0.001))
            finally:
                if parked:
                    self._waiting[label] -= 1
                    if not self._waiting[label]:
                        del self._waiting[label]

    def waiting(self, label: str | None = None) -> int:
        """How many blocking queries (labelled ``label``, or all) are parked waiting for a change. Consul does not
        tell; the fake does, so a test can make its change once the query it started is held, and know that the
        change, not the query's first look, is what answered it."""
        with self._cond:
            return self._waiting.total() if label is None else self._waiting[label]

    # -- sessions ------------------------------------------------------------------------------------------------

    def create_session(self, request: SessionRequest | None = None) -> str:
        """Session.Apply (create): validate, then store; the new session's ID."""
        request = request or SessionRequest(node=self.node_name)
        with self._cond:
            self._expire_due()
            validate_session_request(request, self._ttl_min)
            # The session's node must be registered (node names compare case-insensitively), and every check it
            # names must exist on that node: this agent's node has only serfHealth.
            if request.node.lower() != self.node_name.lower():
                raise server_error("Missing node registration")
            for check_id in request.check_ids():
                if check_id != SERF_HEALTH:
                    raise server_error(f"Missing check '{check_id}' registration")
            idx = self._commit()
            session = Session(
                id=str(uuid.uuid4()),
                node=request.node,
                name=request.name,
                lock_delay=request.lock_delay,
                behavior=request.behavior,
                ttl=request.ttl,
                node_checks=list(request.node_checks) if request.node_checks is not None else None,
                service_checks=[dataclasses.replace(c) for c in request.service_checks]
                if request.service_checks is not None
                else None,
                checks=list(request.checks) if request.checks is not None else None,
                create_index=idx,
                modify_index=idx,
            )
            self._reset_timer(session)
            self._sessions[session.id] = session
            self._session_index = idx
            self._changed()
            return session.id

    def _reset_timer(self, session: Session) -> None:
        ttl = session.ttl_nanos()
        if ttl:
            session.expires_at = self._clock() + ttl * self.ttl_multiplier / SECOND

    def renew_session(self, session_id: str) -> Session:
        """Session.Renew: restart the TTL timer. Not a raft write, so no index moves."""
        with self._cond:
            self._expire_due()
            session = self._sessions.get(session_id)
            if session is None:
                raise not_found(f"Session id '{session_id}' not found")
            self._reset_timer(session)
            self._changed()  # the expiry loop must re-plan
            return dataclasses.replace(session)

    def destroy_session(self, session_id: str) -> None:
        """Session.Apply (destroy); destroying an unknown session succeeds, as in Consul."""
        with self._cond:
            self._expire_due()
            self._invalidate(session_id)

    def _invalidate(self, session_id: str) -> None:
        # deleteSessionTxn: drop the session, then release or delete every key it holds, and start a lock-delay
        # (capped at 60s) on each of those keys. An explicit ?release never starts a lock-delay.
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        idx = self._commit()
        self._session_index = idx
        delay = min(session.lock_delay, MAX_LOCK_DELAY)
        now = self._clock()
        for key in self._kv.held_by(session_id):
            if session.behavior == BEHAVIOR_RELEASE:
                self._kv.release(idx, key)
            else:
                self._kv.delete(idx, key)
            if delay > 0:
                self._lock_delays[key] = now + delay / SECOND
        self._changed()

    def session_info(self, session_id: str) -> tuple[int, Session | None]:
        """Session.Get: the sessions table index and the session, if it is alive."""
        with self._cond:
            self._expire_due()
            session = self._sessions.get(session_id)
            return max(self._session_index, 1), dataclasses.replace(session) if session else None

    def session_list(self) -> tuple[int, list[Session]]:
        """Session.List: every live session, ordered by ID (memdb's id index)."""
        with self._cond:
            self._expire_due()
            sessions = [dataclasses.replace(s) for _, s in sorted(self._sessions.items())]
            return max(self._session_index, 1), sessions

    def node_sessions(self, node: str) -> tuple[int, list[Session]]:
        """Session.NodeSessions: the live sessions of ``node`` (case-insensitive, like the node index)."""
        index, sessions = self.session_list()
        return index, [s for s in sessions if s.node.lower() == node.lower()]

    # -- KV reads ------------------------------------------------------------------------------------------------

    def kv_get(self, key: str) -> tuple[int, KVEntry | None]:
        with self._cond:
            self._expire_due()
            return self._kv.get(key)

    def kv_list(self, prefix: str) -> tuple[int, list[KVEntry]]:
        with self._cond:
            self._expire_due()
            return self._kv.list_prefix(prefix)

    def kv_keys(self, prefix: str, separator: str = "") -> tuple[int, list[str]]:
        with self._cond:
            self._expire_due()
            return self._kv.keys(prefix, separator)

    # -- KV writes -----------------------------------------------------------------------------------------------

    def _write(self, key: str, apply: Callable[[int], T]) -> T:
        with self._cond:
            self._expire_due()
            if not key:
                raise server_error("Must provide key")
            result = apply(self._commit())
            self._changed()
            return result

    def kv_put(self, key: str, value: bytes | None, flags: int = 0) -> bool:
        """A plain PUT: always succeeds; a held lock stays held (Consul's locks are advisory)."""

        def put(idx: int) -> bool:
            self._kv.set(idx, key, value, flags)
            return True

        return self._write(key, put)

    def kv_cas(self, key: str, value: bytes | None, cas: int, flags: int = 0) -> bool:
        return self._write(key, lambda idx: self._kv.cas(idx, key, value, flags, cas))

    def kv_acquire(self, key: str, value: bytes | None, session_id: str, flags: int = 0) -> bool:
        """``?acquire=``: false while a lock-delay runs on the key or another session holds it; an unknown session
        is an error (kvsLockTxn's ``invalid session "<id>"``)."""
        with self._cond:
            self._expire_due()
            if not key:
                raise server_error("Must provide key")
            # The leader checks the lock-delay before the write reaches raft (kvsPreApply), so it comes first.
            until = self._lock_delays.get(key)
            if until is not None:
                if until > self._clock():
                    return False
                del self._lock_delays[key]
            if not session_id:
                raise server_error("missing session")
            idx = self._commit()
            if session_id not in self._sessions:
                raise server_error(f'invalid session "{session_id}"')
            acquired = self._kv.lock(idx, key, value, flags, session_id)
            self._changed()
            return acquired

    def kv_release(self, key: str, value: bytes | None, session_id: str, flags: int = 0) -> bool:
        """``?release=``: false unless ``session_id`` holds the key. The request's value replaces the stored one."""
        if not session_id:
            raise server_error("missing session")
        return self._write(key, lambda idx: self._kv.unlock(idx, key, value, flags, session_id))

    def kv_delete(self, key: str) -> bool:
        def delete(idx: int) -> bool:
            self._kv.delete(idx, key)
            return True

        return self._write(key, delete)

    def kv_delete_cas(self, key: str, cas: int) -> bool:
        return self._write(key, lambda idx: self._kv.delete_cas(idx, key, cas))

    def kv_delete_tree(self, prefix: str) -> bool:
        with self._cond:
            self._expire_due()
            self._kv.delete_tree(self._commit(), prefix)
            self._changed()
            return True
