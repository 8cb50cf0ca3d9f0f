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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

LUA_DIR = Path(__file__).parent / "lua"
# Seeding 100k entries in one script would block Redis for a noticeable time: write them in slices. The sync reads
# and writes a slice at a time, so a slice is also the memory a sync needs at once (about 1 KiB per entry in flight,
# which the process keeps afterwards): 1,000 keeps that near 1 MiB for two round trips per 1,000 entries.
SEED_SLICE = 1000

# The wire format of the scripts' replies and record arguments: each record is these fields, in this order. The
# one definition: :func:`load_script` gives the scripts the same lists (``WIRE.<record>``) and they read and write
# records through them by name, so a field added here and used on both sides cannot shift the others.
WIRE: dict[str, tuple[str, ...]] = {
    # fetch_due.lua's reply: this header, then one ``entry`` per due or requested entry.
    "header": ("seconds", "micros", "owned", "head", "after_head", "head_key", "head_definition", "head_meta"),
    "entry": ("key", "score", "definition", "meta", "paused", "requested", "due"),
    # commit.lua's arguments after (token, prefix): one ``update`` per entry.
    "update": ("key", "score", "meta", "served"),
    # seed.lua's arguments after (token, prefix, n, n names to prune): one ``seed`` per entry.
    "seed": ("name", "definition", "meta", "score"),
}
LUA_WIRE = LUA_DIR / "wire.lua"


def lua_prelude() -> str:
    """``WIRE`` as Lua tables, then the record helpers of ``lua/wire.lua``: the head of every script."""
    tables = ", ".join(f"{record} = {{{', '.join(repr(f) for f in fields)}}}" for record, fields in WIRE.items())
    return f"local WIRE = {{{tables}}}\n" + LUA_WIRE.read_text(encoding="utf-8")


def records(flat: Sequence[Any], record: str) -> list[dict[str, Any]]:
    """``flat`` cut into ``record``s, each a dict by field name; a length that is not a whole number of records
    means the two sides disagree on the format."""
    fields = WIRE[record]
    if len(flat) % len(fields):
        raise ValueError(f"{len(flat)} values are not a whole number of {record} records of {len(fields)} fields")
    return [dict(zip(fields, flat[i : i + len(fields)], strict=True)) for i in range(0, len(flat), len(fields))]


def flatten(record: str, values: Mapping[str, Any]) -> list[Any]:
    """One record's values in wire order (every field must be given)."""
    return [values[field] for field in WIRE[record]]


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
    """``lua/<name>.lua`` after :func:`lua_prelude`, registered on ``client`` (sent by SHA, and in full only the
    first time)."""
    return client.register_script(lua_prelude() + (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8"))


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


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


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
        size = len(WIRE["header"])
        [header] = records(reply[:size], "header")
        entries = [
            DueEntry(
                key=entry["key"],
                score=_float(entry["score"]),
                definition=entry["definition"],
                meta=entry["meta"],
                paused=entry["paused"] is not None,
                requested=None if entry["requested"] is None else int(entry["requested"]),
                due=bool(int(entry["due"])),
            )
            for entry in records(reply[size:], "entry")
        ]
        head, head_key = _float(header["head"]), header["head_key"]
        return Due(
            now=int(header["seconds"]) + int(header["micros"]) / 1e6,
            owned=bool(int(header["owned"])),
            head=head,
            entries=entries,
            head_entry=None
            if head_key is None or head is None
            else DueEntry(head_key, head, header["head_definition"], header["head_meta"], due=False),
            after_head=_float(header["after_head"]),
        )

    def commit(self, token: str, updates: Sequence[Update]) -> int:
        """One round trip: new scores and metas, and the run-now requests served, fenced. Raises LostLockError when
        the lock is not ours."""
        args: list[str | float] = [token, self.prefix]
        for update in updates:
            score = "" if update.score is None else repr(update.score)
            served = "" if update.served is None else str(update.served)
            args += flatten("update", {"key": update.key, "score": score, "meta": update.meta, "served": served})
        written = int(self._commit(keys=[self.lock_key, self.schedule_key, self.run_now_key], args=args))
        if written < 0:
            raise LostLockError(self.lock_key)
        return written

    # --- start-up sync ----------------------------------------------------------------------------------------

    def read_statics(self) -> set[str]:
        """The names of the static entries the store holds."""
        members: set[str] = self.client.smembers(self.statics_key)  # type: ignore[assignment]  # decoded responses
        return members

    def read_metas(self, names: Sequence[str]) -> tuple[float, list[str | None]]:
        """One round trip: server time and the stored meta of each of ``names``."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.time()
            for name in names:
                pipe.hget(self.key(name), "meta")
            reply = pipe.execute()
        seconds, micros = reply[0]
        return seconds + micros / 1e6, list(reply[1:])

    def seed(self, token: str, prune: Iterable[str], entries: Sequence[Seed]) -> tuple[int, int]:
        """Prune ``prune`` and write ``entries``, fenced, in slices of SEED_SLICE. Raises LostLockError."""
        pruned_names = list(prune)
        pruned = written = 0
        for start in range(0, max(len(entries), 1), SEED_SLICE):
            args: list[str | float | int] = [token, self.prefix, len(pruned_names), *pruned_names]
            for seed in entries[start : start + SEED_SLICE]:
                args += flatten("seed", {**seed.__dict__, "score": repr(seed.score)})
            reply = self._seed(keys=[self.lock_key, self.schedule_key, self.statics_key], args=args)
            if reply == -1:
                raise LostLockError(self.lock_key)
            pruned += int(reply[0])
            written += int(reply[1])
            pruned_names = []  # pruned by the first slice
        return pruned, written
