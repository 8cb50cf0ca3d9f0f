"""The patched RedBeat scheduler: celery-redbeat's Redis layout, batched, fenced, effectively once.

One beat leads (holds ``<prefix>:lock``); the others stand by and try the lock every second. Each tick of the
leader costs a fixed number of Redis round trips however many entries are due:

1. ``fetch_due.lua`` — the server clock, lock ownership and every due entry with its definition and meta (and the
   operator's controls, ``controls.py``: paused entries, whose slots are skipped, and run-now requests);
2. publish every due slot through one producer (confirms awaited per chunk on RabbitMQ), task id
   ``<entry name>@<due epoch seconds>`` (``<entry name>@<request epoch ms>`` for a run-now request);
3. ``commit.lua`` — new scores and metas, and the requests served, only if the lock is still this beat's.

Publishing comes before committing, so a crash in between re-publishes the same slot (same task id, dropped by the
workers) rather than losing it. A beat that finds it lost the lock writes nothing, logs it and stands by.

An optional leader gate (``redbeat_leader_gate``) is asked first on every tick: a beat it turns away does not try
the lock, and gives it up if it held it. The platform gates beat by its Consul hash-ring leader check.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis
from celery import Celery
from celery.beat import Scheduler
from celery.utils.imports import symbol_by_name
from kombu import Producer
from kombu.utils.url import maybe_sanitize_url

from patches.redbeat.client import get_redis, redact_url
from patches.redbeat.config import SchedulerConfig
from patches.redbeat.dispatch import Chunk, ChunkPipeline
from patches.redbeat.entries import (
    Definitions,
    decode_meta,
    encode_meta,
)
from patches.redbeat.observe import Observer
from patches.redbeat.planner import TickPlanner, next_wake
from patches.redbeat.policy import MissedRun, entry_jitter, from_epoch, jittered_score, seed_score
from patches.redbeat.publisher import BatchPublisher, Templates, open_producer
from patches.redbeat.stall import bounded
from patches.redbeat.store import SEED_SLICE, Due, LostLockError, Seed, Store

logger = logging.getLogger("celery.beat")
NEW_META = encode_meta(None)  # what the sync writes where an entry has no meta yet


class RedBeatScheduler(Scheduler):
    # Stock celery-redbeat's beat_init handler blocks on the lock when `lock_key` is set; this scheduler takes the
    # lock in its own ticks (and the handler is disconnected by `patches.redbeat.install`).
    lock_key = None

    def __init__(self, app: Celery, **kwargs: Any) -> None:
        self.conf = SchedulerConfig.from_app(app.conf)
        self.store = Store(get_redis(app), self.conf.key_prefix, self.conf.commit_replicas, self.conf.renew_interval)
        # Host and pid first, so the lock's value tells an operator which beat leads; the random part keeps two
        # schedulers of one process apart.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.observer = Observer(self.store.lock_key)
        self.leading = False
        # Monotonic time the lock's TTL was last reset (acquire or renew): the lease runs from there. Seeing that we
        # still own the lock does not extend it.
        self._renewed = 0.0
        self._server_now = time.time()
        self._fetched = time.monotonic()  # when _server_now was read
        self._publisher: BatchPublisher | None = None
        self._unsynced = False  # entries were added while leading: the next tick syncs them
        policies: dict[str, MissedRun] = {}
        self.definitions = Definitions(self._clock, policies, self.conf.missed_run, self.store.key(""), app)
        self.templates = Templates(app)
        self.gate = symbol_by_name(self.conf.leader_gate)(app) if self.conf.leader_gate else None
        self._gate_open = True  # the gate's last answer
        super().__init__(app, **kwargs)

    # --- the shared clock -------------------------------------------------------------------------------------

    def _clock(self) -> dt.datetime:
        """The Redis server's time as of the last round trip: what every schedule computes against."""
        return from_epoch(self._server_now)

    # --- static schedule --------------------------------------------------------------------------------------

    def setup_schedule(self) -> None:
        """Validate the static ``beat_schedule`` now; it is written to Redis by whichever beat takes the lock."""
        # Read from beat_schedule itself whenever needed, not copied (see entries.StaticEntries).
        static = self.app.conf.beat_schedule or {}
        self.definitions.static.set_schedule(static)
        self.update_from_dict(static)
        # Celery's own entries (celery.backend_cleanup, for a result backend that does not expire results itself)
        # arrive through update_from_dict, as in every Celery scheduler.
        self.install_default_entries(static)

    def update_from_dict(self, dict_: dict[str, Any]) -> None:
        """Add entries to this beat's schedule: validated now, written to Redis by the leader's next tick (at once
        if this beat leads). Celery's Scheduler wrote them into ``self.schedule``, which this scheduler rebuilds on
        every read, so they were lost (``celery.backend_cleanup`` was never scheduled); stock redbeat stores them."""
        for name, raw in dict_.items():
            # Stock's entry defaults its args to None, Celery's to (): stored as stock stores it ("args": null), an
            # entry a stock beat wrote is the same definition here, and its score is kept across a takeover.
            given, raw = raw, {"args": None, **raw}
            missed = raw.pop("missed_run", None)
            policy = MissedRun.parse(missed, self.conf.missed_run, where=f"entry {name}: ")
            jitter = entry_jitter(name, raw.pop("jitter", None), raw.get("schedule"))
            # The workers apply an entry's overlap policy (the platform's scheduler/overlap); beat publishes its
            # slots as any other's. Not a field of Celery's entry, which refuses unknown ones.
            raw.pop("overlap", None)
            # Only the entries whose policy is not the default are listed (one dict slot per entry otherwise).
            if policy == self.conf.missed_run:
                self.definitions.policies.pop(name, None)
            else:
                self.definitions.policies[name] = policy
            if jitter:
                self.definitions.jitters[name] = jitter
            else:
                self.definitions.jitters.pop(name, None)
            self._maybe_entry(name, raw)  # Celery's validation of the entry (a bad schedule raises here)
            self.definitions.static.add(name, given)
        if dict_ and self.leading:
            self._unsynced = True

    def _sync(self) -> None:
        """Write the static schedule into the store, fenced, and prune the static entries it no longer has. A slice
        of SEED_SLICE entries at a time, read then written, so the memory a sync needs is bounded by a slice, not by
        the schedule (reading all 100k entries' metas at once took ~1 KB per entry, kept by the process after)."""
        names = list(self.definitions.static)
        statics = self.store.read_statics()
        prune, remembered = sorted(statics - set(names)), bool(statics)
        del statics
        pruned = written = 0
        for start in range(0, max(len(names), 1), SEED_SLICE):
            # A large schedule takes longer to sync than the lease lasts (1M entries: ~40 s): renewed as in a tick.
            self._keep_lease()
            chunk = names[start : start + SEED_SLICE]
            now, metas = self.store.read_metas(chunk)
            self._server_now, self._fetched = now, time.monotonic()
            remembered = remembered or any(metas)
            seeds = [self._seed(name, raw_meta, now) for name, raw_meta in zip(chunk, metas, strict=True)]
            slice_pruned, slice_written = self.store.seed(self.token, prune, seeds)
            pruned, written, prune = pruned + slice_pruned, written + slice_written, []
        if names and not remembered:
            # A store with none of the schedule: new, or it lost its data (a Redis restart without persistence, a
            # failover to an empty replica). Every entry's history is gone, so every entry is new to it.
            first = "fires now" if self.conf.first_run_now else "waits for its next slot"
            logger.warning("beat: the schedule store holds none of the %d entries (a new store, or one that lost its "
                           "data): each entry %s", len(names), first)  # fmt: skip
        logger.info("beat: schedule synced: %d entries written, %d stale entries pruned", written, pruned)

    def _seed(self, name: str, raw_meta: str | None, now: float) -> Seed:
        """What the sync writes for static entry ``name``: its definition, a meta where it has none, its score."""
        definition = self.definitions.static[name]
        try:
            last_run_at, _ = decode_meta(raw_meta)
        except ValueError as exc:
            logger.error("beat: entry %s has an unreadable meta (%s): treated as never run", name, exc)
            last_run_at = None
        score = seed_score(definition.schedule, last_run_at, now, self.conf.first_run_now)
        if score != now:  # a slot (a first run "now" fires now)
            score = jittered_score(name, score, definition.jitter)
        return Seed(name, definition.encode(), NEW_META, score)

    # --- leadership -------------------------------------------------------------------------------------------

    def _try_lead(self) -> bool:
        # The lease is counted from before the call: the TTL may have started any time during it.
        asked = time.monotonic()
        taken = self.store.acquire(self.token, self.conf.lock_timeout)
        if not taken:
            return False
        self._renewed = asked
        self.leading = True
        self.observer.acquired(self.conf.lock_timeout, took_over=taken.took_over, kept=taken.kept)
        self._sync()
        return True

    def _step_down(self, why: str) -> None:
        self.observer.stepped_down(why, was_leading=self.leading)
        self.leading = False
        self._close_publisher()

    def _lease_valid(self) -> bool:
        """Whether the lock can still be ours: a beat paused past most of its TTL (SIGSTOP, a long GC, a frozen VM)
        must not publish a batch it fetched before the pause, since another beat may have taken over."""
        return time.monotonic() - self._renewed < self.conf.lock_timeout * 0.75

    def _renew_if_due(self) -> bool:
        asked = time.monotonic()
        if asked - self._renewed < self.conf.renew_interval:
            return True
        try:
            renewed = self.store.renew(self.token, self.conf.lock_timeout)
        except redis.RedisError:
            self.observer.renew_failed()
            raise
        if not renewed:
            self.observer.renew_failed()
            return False
        self._renewed = asked
        return True

    # --- a tick -----------------------------------------------------------------------------------------------

    def _gate_allows(self) -> bool:
        """Whether the leader gate (if any) lets this beat lead. On the gate's first refusal the lock is given up
        (a no-op unless this token holds it: it may, after a step-down on a Redis error), so the beat the gate now
        lets lead does not wait for the lock's TTL."""
        if self.gate is None:
            return True
        allowed = bool(self.gate.allows())
        if not allowed and self._gate_open:
            self._release_lock(expected=self.leading)
            self._step_down("the leader gate turned this beat away")
        self._gate_open = allowed
        return allowed

    def _release_lock(self, *, expected: bool = True) -> None:
        """Release the lock if this token holds it; ``expected=False``: only a release worth mentioning is logged."""
        try:
            released = self.store.release(self.token)
        except redis.RedisError as exc:
            if expected:
                logger.warning("beat: could not release the lock (it expires by itself): %s", exc)
            return
        if released or expected:
            logger.info("beat: %s the lock %s", "released" if released else "no longer held", self.store.lock_key)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        started = time.perf_counter()
        interval = self._tick()
        self.observer.tick(time.perf_counter() - started)
        # The gate renews this beat's registration when asked: it must be asked often enough.
        return min(interval, self.gate.max_interval) if self.gate is not None else interval

    def _tick(self) -> float:
        try:
            if not self._gate_allows():
                return self.conf.standby_interval
            if not self.leading and not self._try_lead():
                return self.conf.standby_interval
            if not self._renew_if_due():
                self._step_down("the lock is held by another beat")
                return self.conf.standby_interval
            if self._unsynced:
                self._unsynced = False
                self._sync()
            return self._dispatch()
        except LostLockError:
            self._step_down("the lock is held by another beat")
        except redis.RedisError as exc:
            self._step_down(f"Redis error: {exc}")
            store = redact_url(str(self.app.conf.get("redbeat_redis_url") or ""))
            logger.error("beat: schedule store %s unavailable: %s", store, exc)
        except Exception:
            # Whatever went wrong, beat must keep running: stand by, and try again in a second.
            logger.exception("beat: tick failed")
            self._step_down("tick failed")
        return self.conf.standby_interval

    def _dispatch(self) -> float:
        """Serve every due entry: with ``redbeat_fetch_limit`` a fetch returns at most that many, and the overflow
        is fetched at once, in the same tick (it waited for a later one, arrived late, and ``skip`` dropped it)."""
        while True:
            sleep, more = self._dispatch_once()
            if not more:
                return sleep

    def _dispatch_once(self) -> tuple[float, bool]:
        """One fetch, publish and commit; the sleep until the next tick, and whether more entries may be due (the
        fetch was cut at the limit, and its entries were committed)."""
        due = self.store.fetch_due(self.token, self.conf.fetch_limit)
        if not due.owned:
            raise LostLockError(self.store.lock_key)
        self._server_now = due.now
        self._fetched = time.monotonic()
        oldest = min((e.score for e in due.entries if e.due and e.score is not None), default=None)
        requested = sum(e.requested is not None for e in due.entries)
        self.observer.claimed(len(due.entries), sum(e.due for e in due.entries), requested, oldest)
        next_scores, retry_soon = self._run(due, due.now if oldest is None else oldest) if due.entries else ([], False)
        limit = self.conf.fetch_limit
        if limit and not retry_soon and sum(e.due for e in due.entries) >= limit:
            return 0.0, True
        wakes = (next_wake(due, self.definitions), *next_scores)  # the next entry's slot, not its score
        wake = min([s for s in wakes if s is not None and s >= 0], default=None)
        sleep = self.max_interval if wake is None else max(wake - due.now, 0.0)
        if retry_soon:  # entries left unpublished are still due: try again shortly, not at the next head
            sleep = min(sleep, self.conf.standby_interval)
        # Wake when the lease is due for renewal, not a whole renew interval after a tick that came just before
        # it: otherwise renewals could be nearly 2·TTL/3 apart, leaving a third of the lease as the margin.
        until_renewal = self._renewed + self.conf.renew_interval - time.monotonic()
        return max(min(sleep, self.max_interval, until_renewal), 0.0), False

    def _run(self, due: Due, oldest: float) -> tuple[list[float], bool]:
        """Plan, publish and commit the due entries (``dispatch.ChunkPipeline``); the committed entries' next
        scores, and whether some were left uncommitted. ``oldest``: the earliest due score, for the lateness logged."""
        pipeline = ChunkPipeline(
            publisher=self._get_publisher,
            keep_lease=self._keep_lease,
            lease_valid=self._lease_valid,
            clock=self._server_clock,
            commit=functools.partial(self.store.commit, self.token),
            publish_failed=self._close_publisher,
            reporter=self.observer,
        )
        committed = pipeline.run(self._chunks(due), due.now, len(due.entries))
        if committed.updates:
            logger.info("Scheduler: Sent %d due task(s) of %d entries, lateness %.3fs",
                        len(committed.runs), len(committed.updates), due.now - oldest)  # fmt: skip
        scores = [u.score for u in committed.updates if u.score is not None]
        return scores, len(committed.updates) < len(due.entries)

    def _chunks(self, due: Due) -> Iterator[Chunk]:
        """The due entries planned chunk by chunk, all against the fetch's server time."""
        planner = TickPlanner(self.definitions, self.templates, due.now)
        size = self.conf.publish_chunk
        for start in range(0, len(due.entries), size):
            planned = [planner(item) for item in due.entries[start : start + size]]
            messages = [(d.template(self.templates), r) for d, runs, _ in planned if d is not None for r in runs]
            yield Chunk(messages, [update for *_, update in planned])

    def _keep_lease(self) -> None:
        if not self._renew_if_due():
            raise LostLockError(self.store.lock_key)

    def _server_clock(self) -> float:
        """The Redis server's time now, from its reading at the last fetch and this host's monotonic clock."""
        return self._server_now + (time.monotonic() - self._fetched)

    # --- publishing -------------------------------------------------------------------------------------------

    def _get_publisher(self) -> BatchPublisher:
        if self._publisher is None:
            producer = open_producer(self.app, timeout=self.conf.renew_interval)
            # Waiting for confirms longer than a third of the lease would let the lease lapse mid-batch.
            self._publisher = BatchPublisher(self.app, producer, confirm_timeout=self.conf.renew_interval)
        return self._publisher

    def _close_publisher(self, graceful: bool = False) -> None:
        """Drop the broker connection. Only a clean stop says goodbye to the broker, and within a bound: after a
        failure the link may be stalled, and AMQP's close waits for the broker's reply with no timeout."""
        if self._publisher is not None:
            connection = self._publisher.producer.connection
            try:
                if graceful:
                    with bounded(connection, self.conf.renew_interval, "closing the broker connection"):
                        connection.release()
                else:
                    connection.collect()
            except Exception as exc:  # the connection may already be gone; nothing to do about it
                logger.debug("beat: closing the broker connection: %s", exc)
            self._publisher = None

    @property
    def producer(self) -> Producer:
        """The producer every dispatch goes through (Celery's schedulers expose one; signal handlers use it)."""
        return self._get_publisher().producer

    # --- Celery's Scheduler interface -------------------------------------------------------------------------

    def close(self) -> None:
        # A standby releases too: nothing to give up, but it leaves the beats seen at once.
        self._release_lock(expected=self.leading)
        self.leading = False
        self.observer.closed()
        self._close_publisher(graceful=True)
        if self.gate is not None:
            self.gate.close()
        super().close()

    def sync(self) -> None:
        """Every tick already committed its writes."""

    @property
    def schedule(self) -> dict[str, Any]:
        """The static entries, by name (their definitions, as stored)."""
        return dict(self.definitions.static)

    @property
    def lock_timeout(self) -> float:
        """The lease in seconds, under stock's attribute name (its tools read it): 30 s unless configured."""
        return self.conf.lock_timeout

    @property
    def info(self) -> str:
        url = maybe_sanitize_url(self.app.conf.get("redbeat_redis_url") or "")
        return (
            f"       . redis -> {url}\n"
            f"       . lock -> `{self.store.lock_key}` ttl {self.conf.lock_timeout:.0f}s, "
            f"renewed every {self.conf.renew_interval:.0f}s, standby retry {self.conf.standby_interval:.0f}s"
        )
