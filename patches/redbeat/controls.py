"""An operator's controls of the schedule (``manage.py beat_schedule``): read it, pause or resume an entry, run one
now.

None of them publishes or reschedules anything itself. Pausing sets the ``paused`` field of the entry's hash; running
now adds a request to ``<prefix>:run-now``. The leader honours both inside its fenced tick — ``fetch_due.lua`` hands
it the paused flags and the pending requests, ``commit.lua`` clears a request with the entry's new meta — so they
keep every guarantee of a scheduled slot:

* only the lock holder acts on them: a deposed beat's fetch returns nothing and its commit writes nothing;
* a requested run is published under ``<name>@<request epoch milliseconds>``, the same id from whichever leader
  serves it: a leader that dies between publishing it and clearing it leaves it to the next leader, which publishes
  the same id, and the workers drop the second delivery. Milliseconds, so it never equals a slot's id (``<name>@<due
  epoch seconds>``) and is not dropped as a copy of the entry's scheduled run;
* a request is added with HSETNX: two operators asking at once make one request, and one run;
* a paused entry's slots are skipped as they fall due (its score moves on, nothing is queued up), so it resumes at
  its next slot; the sync writes only definitions, new metas and scores, so a pause outlives restarts and syncs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from patches.redbeat.store import Store, load_script


def run_now_id(name: str, requested_ms: int) -> str:
    """The task id of a requested run (see the module docstring)."""
    return f"{name}@{requested_ms}"


@dataclass(frozen=True)
class StoredEntry:
    """One entry as Redis holds it: raw JSON, decoded by the caller (``patches.redbeat.entries``)."""

    name: str
    score: float | None  # the next due time; None if the entry is not in the schedule ZSET
    definition: str | None
    meta: str | None
    paused_since: float | None  # epoch seconds
    requested: int | None  # a pending run-now request, epoch milliseconds
    static: bool  # from the static beat_schedule (the statics SET)


@dataclass(frozen=True)
class Snapshot:
    now: float  # the Redis server's clock, the one the leader compares due times with
    lock_ttl: float | None  # seconds left on the leader's lock; None when no beat holds it
    entries: list[StoredEntry]
    # The lock's value: this scheduler's beats write ``<host>:<pid>:<nonce>`` (stock's, a uuid); None when free.
    lock_holder: str | None = None


@dataclass(frozen=True)
class Lease:
    """Who leads and who stands by, as the store records it (``acquire.lua``, ``release.lua``)."""

    now: float  # the Redis server's clock
    holder: str | None  # the lock's value; None when free
    ttl: float | None  # seconds left on the lock
    record: dict[str, str]  # the leader record: token, since, previous, terms, released, failovers, last_failover
    beats: list[tuple[str, float]]  # every beat seen trying for the lock or renewing it: (token, server time seen)


@dataclass(frozen=True)
class ControlOutcome:
    """What a pause, resume or run request did. ``exists`` False: there is no such entry (nothing was written)."""

    exists: bool
    changed: bool  # False: already paused / not paused / a run already pending
    stamp: int | None  # paused since (epoch seconds) or the pending request (epoch milliseconds)


class Controls:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pause = load_script(store.client, "pause")
        self._request_run = load_script(store.client, "request_run")

    def read(self) -> Snapshot:
        """The whole schedule in two round trips: the keys, then every entry's hash."""
        store = self.store
        with store.client.pipeline(transaction=False) as pipe:
            self._clock_and_lock(pipe)
            pipe.zrange(store.schedule_key, 0, -1, withscores=True)
            pipe.smembers(store.statics_key)
            pipe.hgetall(store.run_now_key)
            (seconds, micros), pttl, holder, scored, statics, requests = pipe.execute()
        scores: dict[str, float | None] = {key: float(score) for key, score in scored}
        # A static entry missing from the ZSET (a sync cut short) is still shown: the leader will not run it.
        for name in statics:
            scores.setdefault(store.key(name), None)
        keys = sorted(scores)
        with store.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, "definition", "meta", "paused")
            hashes = pipe.execute()
        entries = []
        for key, fields in zip(keys, hashes, strict=True):
            name = key[len(store.prefix) :] if key.startswith(store.prefix) else key
            entries.append(_stored(name, scores[key], fields, requests.get(name), name in statics))
        return _snapshot(seconds, micros, pttl, holder, entries)

    def read_one(self, name: str) -> Snapshot:
        """The schedule as :meth:`read` gives it, but with only the entry ``name`` (none if it is not stored): one
        round trip, for a page about one entry of a schedule of any size."""
        store = self.store
        key = store.key(name)
        with store.client.pipeline(transaction=False) as pipe:
            self._clock_and_lock(pipe)
            pipe.zscore(store.schedule_key, key)
            pipe.sismember(store.statics_key, name)
            pipe.hget(store.run_now_key, name)
            pipe.hmget(key, "definition", "meta", "paused")
            (seconds, micros), pttl, holder, score, static, requested, (definition, meta, paused) = pipe.execute()
        fields = [definition, meta, paused]
        stored = score is not None or static or definition is not None or meta is not None
        entries = [_stored(name, float(score) if score is not None else None, fields, requested, bool(static))]
        return _snapshot(seconds, micros, pttl, holder, entries if stored else [])

    def lease(self) -> Lease:
        """The lock, the leader record and the beats seen, in one round trip."""
        store = self.store
        with store.client.pipeline(transaction=False) as pipe:
            self._clock_and_lock(pipe)
            pipe.hgetall(store.leader_key)
            pipe.zrange(store.beats_key, 0, -1, withscores=True)
            (seconds, micros), pttl, holder, record, beats = pipe.execute()
        ttl = pttl / 1000 if pttl is not None and pttl >= 0 else None
        return Lease(
            now=seconds + micros / 1e6,
            holder=holder if ttl is not None else None,
            ttl=ttl,
            record=dict(record or {}),
            beats=[(str(token), float(seen)) for token, seen in beats],
        )

    def _clock_and_lock(self, pipe: Any) -> None:
        """The first three replies of every read: the server's TIME, and the lock's PTTL and value."""
        pipe.time()
        pipe.pttl(self.store.lock_key)
        pipe.get(self.store.lock_key)

    def pause(self, name: str) -> ControlOutcome:
        return self._outcome(self._pause(keys=[self.store.key(name)], args=["1"]))

    def resume(self, name: str) -> ControlOutcome:
        return self._outcome(self._pause(keys=[self.store.key(name)], args=["0"]))

    def request_run(self, name: str) -> ControlOutcome:
        keys = [self.store.key(name), self.store.run_now_key]
        return self._outcome(self._request_run(keys=keys, args=[name]))

    def wait_served(self, name: str, requested: int, timeout: float, poll: float = 0.2) -> bool:
        """Whether the leader cleared the request ``requested`` within ``timeout`` seconds (it clears it in the
        commit that follows the publish, so cleared means published — or dropped, if the entry vanished)."""
        deadline = time.monotonic() + timeout
        while True:
            pending = self.store.client.hget(self.store.run_now_key, name)
            if pending is None or int(pending) != requested:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)

    def meta(self, name: str) -> str | None:
        raw = self.store.client.hget(self.store.key(name), "meta")
        return str(raw) if raw is not None else None

    @staticmethod
    def _outcome(reply: list[int | str | None]) -> ControlOutcome:
        exists, changed, stamp = reply
        return ControlOutcome(
            exists=bool(exists), changed=bool(changed), stamp=int(stamp) if stamp is not None else None
        )


def _stored(
    name: str, score: float | None, fields: list[str | None], requested: str | None, static: bool
) -> StoredEntry:
    """An entry from its score, its hash's ``definition``, ``meta`` and ``paused`` fields and its run-now request."""
    definition, meta, paused = fields
    return StoredEntry(
        name=name,
        score=score,
        definition=definition,
        meta=meta,
        paused_since=float(paused) if paused else None,
        requested=int(requested) if requested else None,
        static=static,
    )


def _snapshot(seconds: int, micros: int, pttl: int | None, holder: str | None, entries: list[StoredEntry]) -> Snapshot:
    """The snapshot of a read: TIME's reply, the lock's PTTL and value, and the entries."""
    lock_ttl = pttl / 1000 if pttl is not None and pttl >= 0 else None
    return Snapshot(
        now=seconds + micros / 1e6,
        lock_ttl=lock_ttl,
        entries=entries,
        lock_holder=holder if lock_ttl is not None else None,
    )
