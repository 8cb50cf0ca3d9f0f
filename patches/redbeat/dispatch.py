"""A tick's due entries go out as a chunk pipeline: send → confirm → commit.

Chunks are sent one after another, and a chunk's confirms are awaited once the next chunk has been sent, so the
broker confirms one chunk while the beat sends the next (at most one chunk in flight). Only chunks whose every
message was confirmed are committed, in one ``commit.lua`` call at the end. Each run of a chunk that was sent whole
(or cut short by the lease) is reported once: committed, or uncommitted with the reason. What is not committed goes
out again from whoever leads next, under the same task ids, and the workers drop the copy; that includes the part
of a chunk whose send failed midway, which is not reported (the broker may or may not have it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import redis

from patches.redbeat.observe import PlannedRun, SentRun
from patches.redbeat.publisher import LeaseExpiredError, Template
from patches.redbeat.store import LostLockError, Update

logger = logging.getLogger("celery.beat")


class ChunkPublisher(Protocol):
    """What the pipeline needs of ``publisher.BatchPublisher``."""

    def send(
        self, messages: Iterable[tuple[Template, str]], now: float, still_valid: Callable[[], bool] | None = None
    ) -> int: ...

    def confirm(self, mark: int) -> None: ...


class Reporter(Protocol):
    """What the pipeline tells ``observe.Observer``."""

    def committed(self, sent: list[SentRun]) -> None: ...

    def uncommitted(self, sent: list[SentRun], why: str) -> None: ...


@dataclass(slots=True)
class Chunk:
    """A planned chunk: its messages, and the updates (scores, metas, requests served) to commit once all of them
    are confirmed. An entry with nothing to send (skipped slots, an unreadable definition) has an update only."""

    messages: list[tuple[Template, PlannedRun]]
    updates: list[Update]


@dataclass(slots=True)
class Sent:
    """A chunk on its way: the publisher's confirmation mark, and what to commit once the broker confirmed it."""

    mark: int
    updates: list[Update]
    runs: list[SentRun]


@dataclass(frozen=True, slots=True)
class Committed:
    """What a tick committed: the entries' updates, and the runs they sent."""

    updates: list[Update]
    runs: list[SentRun]


@dataclass(slots=True)
class ChunkPipeline:
    """One tick's send → confirm → commit. The callables are the scheduler's: ``publisher`` opens the broker
    connection (lazily, again after a failure: ``publish_failed`` drops it); ``keep_lease`` renews the lock when due
    and raises LostLockError when it is gone; ``lease_valid`` says whether the lease still covers sending one more
    message; ``clock`` is the Redis server's time now; ``commit`` is ``Store.commit`` for this beat's token."""

    publisher: Callable[[], ChunkPublisher]
    keep_lease: Callable[[], None]
    lease_valid: Callable[[], bool]
    clock: Callable[[], float]
    commit: Callable[[list[Update]], object]
    publish_failed: Callable[[], None]
    reporter: Reporter
    confirmed: list[Sent] = field(default_factory=list)
    in_flight: list[Sent] = field(default_factory=list)

    def run(self, chunks: Iterable[Chunk], now: float, entries: int) -> Committed:
        """Send ``chunks`` (planned lazily: the first messages leave before the last entries are planned), then
        commit every confirmed chunk. ``now``: the fetch's server time, which the
        messages are stamped with; ``entries``: how many the chunks hold, for the log. LostLockError and a failed
        commit are raised (nothing more is written); any other error stops the sending, and the chunks confirmed
        before it are still committed."""
        try:
            for chunk in chunks:
                self.keep_lease()  # a long batch outlasts a third of the TTL
                if not self._send(chunk, now):
                    break
                self._confirm(keep=1)
            self._confirm(keep=0)
        except LostLockError:
            self.reporter.uncommitted(_runs(self.confirmed + self.in_flight), "this beat lost the lock")
            raise
        except Exception as exc:
            # Nothing of the failed chunk is committed: it goes out again next tick, under the same task ids.
            logger.error("beat: publishing failed, %d entries will be retried: %s: %s",
                         entries - len(_updates(self.confirmed)), type(exc).__name__, exc)  # fmt: skip
            self.reporter.uncommitted(_runs(self.in_flight), "publishing failed")
            self.in_flight.clear()
            self.publish_failed()
        return self._commit()

    def _send(self, chunk: Chunk, now: float) -> bool:
        """Send one chunk; False when the lease ran out part way (the rest of the tick is not sent)."""
        messages = [(template, run.id) for template, run in chunk.messages]
        try:
            # The lease is checked before every message: a beat paused before or during the chunk (SIGSTOP, a long
            # GC, a frozen VM) sends nothing more, since another beat may lead by now.
            mark = self.publisher().send(messages, now, still_valid=self.lease_valid) if messages else 0
        except LeaseExpiredError as exc:
            # This chunk is not committed: whoever leads next publishes it again under the same ids. The chunks
            # before it are confirmed and committed if the lock is still this beat's (commit.lua checks).
            logger.warning("beat: paused past the lease while publishing (%s); re-checking the lock", exc)
            at = self.clock()
            self.reporter.uncommitted([SentRun(run, t.task, at) for t, run in chunk.messages[: exc.sent]],
                                      "paused past the lease")  # fmt: skip
            return False
        at = self.clock()
        self.in_flight.append(Sent(mark, chunk.updates, [SentRun(run, t.task, at) for t, run in chunk.messages]))
        return True

    def _confirm(self, keep: int) -> None:
        """Wait for the broker's confirms of the chunks in flight but the last ``keep``. A chunk leaves the flight
        only once confirmed: if the wait fails, it is reported with the rest as uncommitted."""
        while len(self.in_flight) > keep:
            self.publisher().confirm(self.in_flight[0].mark)
            self.confirmed.append(self.in_flight.pop(0))

    def _commit(self) -> Committed:
        updates, runs = _updates(self.confirmed), _runs(self.confirmed)
        if not updates:
            return Committed([], [])
        try:
            self.commit(updates)
        except (LostLockError, redis.RedisError) as exc:
            self.reporter.uncommitted(runs, f"the commit failed: {exc}")
            raise
        self.reporter.committed(runs)
        return Committed(updates, runs)


def _updates(chunks: list[Sent]) -> list[Update]:
    return [update for chunk in chunks for update in chunk.updates]


def _runs(chunks: list[Sent]) -> list[SentRun]:
    return [run for chunk in chunks for run in chunk.runs]
