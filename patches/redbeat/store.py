"""The schedule in Redis, in celery-redbeat's layout, read and written in O(1) round trips per tick.

Layout (unchanged, so a deployment's existing schedule carries over and stock tools can read it):

* ``<prefix><name>``: hash with ``definition`` and ``meta`` (``last_run_at``, ``total_run_count``), JSON;
* ``<prefix>:schedule``: ZSET of entry keys scored by next due time (epoch seconds; < 0 = never);
* ``<prefix>:statics``: SET of the names that came from the static ``beat_schedule``;
* ``<prefix>:lock``: the leader's token (``<host>:<pid>:<random>``), with a TTL.

One addition for operators: ``<prefix>:leader``, a hash of who took the lock last and when (``token``, ``since``,
``previous``, ``terms``, ``released``), written by ``acquire.lua`` when the lock changes hands and by ``release.lua``
on a clean stop.

Two additions for ``manage.py beat_schedule`` (see ``controls.py``), which stock tools ignore: a ``paused`` field in
an entry's hash (its slots are skipped while it is there), and ``<prefix>:run-now``, a hash of entry name → request
time (epoch milliseconds) of the runs an operator asked for, served and cleared by the leader's fenced scripts.
The operator's own writes (``pause.lua``, ``request_run.lua``) need no lock: they only ask; the leader acts.

Every write a beat makes is a Lua script (``lua/*.lua`` beside this module) that first checks the lock still holds
this beat's token, so a beat that lost leadership — paused, partitioned, or just slow — changes nothing. The scripts
touch entry hashes named by their arguments, so the store needs a single Redis (standalone or behind Sentinel), not a
cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.commands.core import Script

LUA_DIR = Path(__file__).parent / "lua"
# Seeding 100k entries in one script would block Redis for a noticeable time: write them in slices.
SEED_SLICE = 5000


@dataclass(frozen=True)
class DueEntry:
    key: str
    score: float | None  # None: not in the schedule ZSET
    definition: str | None
    meta: str | None
    paused: bool = False
    requested: int | None = None  # a pending run-now request (epoch milliseconds)
    due: bool = True  # False: returned only for its run-now request


@dataclass(frozen=True)
class Due:
    now: float  # the Redis server's clock
    owned: bool  # this beat still holds the lock
    head: float | None  # the earliest score after now
    entries: list[DueEntry]
    head_entry: DueEntry | None = None  # the entry of that score (due=False), with its hash
    after_head: float | None = None  # the score after it


@dataclass(frozen=True)
class Update:
    key: str
    score: float | None  # None keeps the stored score
    meta: str  # "" keeps the stored meta
    served: int | None = None  # the run-now request this update answers (cleared by the commit)


@dataclass(frozen=True)
class Seed:
    name: str
    definition: str
    meta: str  # written only if the entry has none yet
    score: float


def load_script(client: redis.Redis, name: str) -> Script:
    """``lua/<name>.lua``, registered on ``client`` (sent by SHA, and in full only the first time)."""
    return client.register_script((LUA_DIR / f"{name}.lua").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Acquired:
    """What ``acquire.lua`` answered; true when this beat holds the lock."""

    held: bool
    took_over: bool = False  # from another beat whose lease ran out (a failover), not a start or a hand-over
    kept: bool = False  # it was still this beat's (it had stood by on an error)

    def __bool__(self) -> bool:
        return self.held

    @classmethod
    def from_reply(cls, reply: int) -> Acquired:
        return cls(held=reply != 0, took_over=reply == 3, kept=reply == 1)


class LostLockError(Exception):
    """The lock no longer holds this beat's token: another beat leads now."""


class Store:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.schedule_key = prefix + ":schedule"
        self.statics_key = prefix + ":statics"
        self.lock_key = prefix + ":lock"
        self.leader_key = prefix + ":leader"
        self.run_now_key = prefix + ":run-now"
        self._acquire = load_script(client, "acquire")
        self._fetch_due = load_script(client, "fetch_due")
        self._commit = load_script(client, "commit")
        self._seed = load_script(client, "seed")
        self._renew = load_script(client, "renew")
        self._release = load_script(client, "release")

    def key(self, name: str) -> str:
        return self.prefix + name

    # --- the lock ---------------------------------------------------------------------------------------------

    def acquire(self, token: str, ttl: float) -> Acquired:
        return Acquired.from_reply(
            int(self._acquire(keys=[self.lock_key, self.leader_key], args=[token, int(ttl * 1000)]))
        )

    def renew(self, token: str, ttl: float) -> bool:
        return bool(self._renew(keys=[self.lock_key], args=[token, int(ttl * 1000)]))

    def release(self, token: str) -> bool:
        return bool(self._release(keys=[self.lock_key, self.leader_key], args=[token]))

    # --- a tick -----------------------------------------------------------------------------------------------

    def fetch_due(self, token: str, limit: int = 0) -> Due:
        """One round trip: server time, lock ownership, every entry due by then with its hash, and every entry with
        a pending run-now request."""
        keys = [self.schedule_key, self.lock_key, self.run_now_key]
        reply = self._fetch_due(keys=keys, args=[token, limit, self.prefix])
        now = int(reply[0]) + int(reply[1]) / 1e6
        entries = [
            DueEntry(
                key=reply[i],
                score=None if reply[i + 1] is None else float(reply[i + 1]),
                definition=reply[i + 2],
                meta=reply[i + 3],
                paused=reply[i + 4] is not None,
                requested=None if reply[i + 5] is None else int(reply[i + 5]),
                due=bool(int(reply[i + 6])),
            )
            for i in range(8, len(reply), 7)
        ]
        head, after, head_key, definition, meta = reply[3:8]
        return Due(
            now=now,
            owned=bool(int(reply[2])),
            head=None if head is None else float(head),
            entries=entries,
            head_entry=None if head_key is None else DueEntry(head_key, float(head), definition, meta, due=False),
            after_head=None if after is None else float(after),
        )

    def commit(self, token: str, updates: Sequence[Update]) -> int:
        """One round trip: new scores and metas, and the run-now requests served, fenced. Raises LostLockError when
        the lock is not ours."""
        args: list[str | float] = [token, self.prefix]
        for update in updates:
            score = "" if update.score is None else repr(update.score)
            args += [update.key, score, update.meta, "" if update.served is None else str(update.served)]
        written = int(self._commit(keys=[self.lock_key, self.schedule_key, self.run_now_key], args=args))
        if written < 0:
            raise LostLockError(self.lock_key)
        return written

    # --- start-up sync ----------------------------------------------------------------------------------------

    def read_for_sync(self, names: Sequence[str]) -> tuple[float, set[str], list[str | None]]:
        """One round trip: server time, the statics set, and the stored meta of each of ``names``."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.smembers(self.statics_key)
            for name in names:
                pipe.hget(self.key(name), "meta")
            reply = pipe.execute()
        seconds, micros = reply[0]
        return seconds + micros / 1e6, set(reply[1]), list(reply[2:])

    def seed(self, token: str, prune: Iterable[str], entries: Sequence[Seed]) -> tuple[int, int]:
        """Prune ``prune`` and write ``entries``, fenced, in slices of SEED_SLICE. Raises LostLockError."""
        pruned_names = list(prune)
        pruned = written = 0
        for start in range(0, max(len(entries), 1), SEED_SLICE):
            args: list[str | float | int] = [token, self.prefix, len(pruned_names), *pruned_names]
            for seed in entries[start : start + SEED_SLICE]:
                args += [seed.name, seed.definition, seed.meta, repr(seed.score)]
            reply = self._seed(keys=[self.lock_key, self.schedule_key, self.statics_key], args=args)
            if reply == -1:
                raise LostLockError(self.lock_key)
            pruned += int(reply[0])
            written += int(reply[1])
            pruned_names = []  # pruned by the first slice
        return pruned, written
