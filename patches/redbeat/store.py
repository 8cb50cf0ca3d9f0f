"""The schedule in Redis, in celery-redbeat's layout, read and written in O(1) round trips per tick.

Layout (unchanged, so a deployment's existing schedule carries over and stock tools can read it):

* ``<prefix><name>``: hash with ``definition`` and ``meta`` (``last_run_at``, ``total_run_count``), JSON;
* ``<prefix>:schedule``: ZSET of entry keys scored by next due time (epoch seconds; < 0 = never);
* ``<prefix>:statics``: SET of the names that came from the static ``beat_schedule``;
* ``<prefix>:lock``: the leader's token (``<host>:<pid>:<random>``), with a TTL.

Two additions for operators: ``<prefix>:leader``, a hash of who took the lock last and when (``token``, ``since``,
``previous``, ``terms``, ``released``, ``failovers``, ``last_failover``), written by ``acquire.lua`` when the lock
changes hands and by ``release.lua`` on a clean stop; and ``<prefix>:beats``, a ZSET of the beats trying for the lock
or holding it (token → server time last seen), so the console can list the standbys.

Two additions for ``manage.py beat_schedule`` (see ``controls.py``), which stock tools ignore: a ``paused`` field in
an entry's hash (its slots are skipped while it is there), and ``<prefix>:run-now``, a hash of entry name → request
time (epoch milliseconds) of the runs an operator asked for, served and cleared by the leader's fenced scripts.
The operator's own writes (``pause.lua``, ``request_run.lua``) need no lock: they only ask; the leader acts.

Every write a beat makes is a Lua script (``lua/*.lua`` beside this module) that first checks the lock still holds
this beat's token, so a beat that lost leadership — paused, partitioned, or just slow — changes nothing. Writes
declare every key they touch. With a hash-tagged prefix (``{redbeat}:``: every key of the schedule in one slot, for
a Redis Cluster or a cloud proxy, see ``keys.py``) reads declare theirs too: a tick reads the index
(``fetch_index.lua``) and then the due entries' hashes by key, two round trips; in the stock layout one script reads
both (``fetch_due.lua``), the hashes by the keys the index gave it, which a single Redis allows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script

logger = logging.getLogger("celery.beat")
LUA_DIR = Path(__file__).parent / "lua"
# How long a beat that stopped trying for the lock (killed, cut off) stays in ``<prefix>:beats``: long enough for an
# operator to see that a standby went missing, short enough that the set stays small.
BEATS_SEEN_FOR = 600
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
    # commit.lua's arguments after (token, prefix): one ``update`` per entry (its key is declared in KEYS).
    "update": ("score", "meta", "served"),
    # seed.lua's arguments after (token, n, n names to prune): one ``seed`` per entry (its key is in KEYS).
    "seed": ("name", "definition", "meta", "score"),
    # fetch_index.lua's reply: this header, ``due`` ``slot`` records, then one ``request`` per run-now request.
    "index": ("seconds", "micros", "owned", "head", "after_head", "head_key", "due"),
    "slot": ("key", "score"),
    "request": ("name", "stamp"),
}
LUA_WIRE = LUA_DIR / "wire.lua"
LUA_INDEX = LUA_DIR / "index.lua"  # read_index, the start of both fetch scripts


def lua_prelude() -> str:
    """``WIRE`` as Lua tables, then the record helpers of ``lua/wire.lua`` and ``read_index`` (``lua/index.lua``):
    the head of every script."""
    tables = ", ".join(f"{record} = {{{', '.join(repr(f) for f in fields)}}}" for record, fields in WIRE.items())
    shared = LUA_WIRE.read_text(encoding="utf-8") + LUA_INDEX.read_text(encoding="utf-8")
    return f"local WIRE = {{{tables}}}\n" + shared


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

    @classmethod
    def read(cls, header: Mapping[str, Any], entries: list[DueEntry], head_hash: Sequence[str | None]) -> Due:
        """From a fetch's header (``fetch_due.lua``'s or ``fetch_index.lua``'s: clock, ownership, the head and the
        score after it), the entries, and the head entry's definition and meta."""
        head, head_key = _float(header["head"]), header["head_key"]
        return cls(
            now=int(header["seconds"]) + int(header["micros"]) / 1e6,
            owned=bool(int(header["owned"])),
            head=head,
            entries=entries,
            head_entry=None
            if head_key is None or head is None
            else DueEntry(head_key, head, head_hash[0], head_hash[1], due=False),
            after_head=_float(header["after_head"]),
        )


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


def hash_tag(key: str) -> str | None:
    """The hash tag of ``key`` as Redis Cluster reads it: what is between the first ``{`` and the next ``}``, if not
    empty; None without one (the whole key is hashed)."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    return key[start + 1 : end] if end > start + 1 else None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# How long a write waits for replicas while they have been falling short (see Store.replicate): enough for an online
# replica that keeps up, short enough that one catching up does not hold every tick.
PROBE_WAIT = 0.05


class LostLockError(Exception):
    """The lock no longer holds this beat's token: another beat leads now."""


class Store:
    def __init__(self, client: redis.Redis, prefix: str, replicas: int = 0, replica_wait: float = 1.0) -> None:
        self.client = client
        self.prefix = prefix
        self.replicas, self.replica_wait = replicas, replica_wait
        self.replicas_short = False  # the last WAIT fell short: see replicate()
        # A hash-tagged prefix: a cluster or a proxy, where a script may touch only the keys it declares.
        self.declared = hash_tag(prefix) is not None
        if isinstance(client, RedisCluster) and not self.declared:
            raise ValueError(
                f"redbeat_key_prefix {prefix!r}: a Redis Cluster store needs a hash tag in the prefix, so every key "
                f"of the schedule is in one slot: e.g. {'{' + prefix.rstrip(':') + '}:'!r}"
            )
        self.schedule_key = prefix + ":schedule"
        self.statics_key = prefix + ":statics"
        self.lock_key = prefix + ":lock"
        self.leader_key = prefix + ":leader"
        self.beats_key = prefix + ":beats"
        self.run_now_key = prefix + ":run-now"
        self._acquire = load_script(client, "acquire")
        self._fetch_due = load_script(client, "fetch_due")
        self._fetch_index = load_script(client, "fetch_index")
        self._commit = load_script(client, "commit")
        self._seed = load_script(client, "seed")
        self._read_metas = load_script(client, "read_metas")
        self._renew = load_script(client, "renew")
        self._release = load_script(client, "release")

    def key(self, name: str) -> str:
        return self.prefix + name

    # --- the lock ---------------------------------------------------------------------------------------------

    def acquire(self, token: str, ttl: float) -> Acquired:
        return Acquired.from_reply(
            int(
                self._acquire(
                    keys=[self.lock_key, self.leader_key, self.beats_key],
                    args=[token, int(ttl * 1000), BEATS_SEEN_FOR],
                )
            )
        )

    def renew(self, token: str, ttl: float) -> bool:
        return bool(self._renew(keys=[self.lock_key, self.beats_key], args=[token, int(ttl * 1000)]))

    def release(self, token: str) -> bool:
        """Give the lock up if ``token`` holds it (True then), and leave the beats seen in any case."""
        return bool(self._release(keys=[self.lock_key, self.leader_key, self.beats_key], args=[token]))

    # --- a tick -----------------------------------------------------------------------------------------------

    def fetch_due(self, token: str, limit: int = 0) -> Due:
        """Server time, lock ownership, every entry due by then with its hash, and every entry with a pending run-now
        request: one round trip, two with declared keys (:meth:`fetch_declared`)."""
        if self.declared:
            return self.fetch_declared(token, limit)
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
        return Due.read(header, entries, (header["head_definition"], header["head_meta"]))

    def fetch_declared(self, token: str, limit: int = 0) -> Due:
        """:meth:`fetch_due` in two round trips, every key declared: the index, then the hashes of the entries it
        names (and the scores of those only requested). Between the two only this beat writes, and its own writes
        are fenced: an operator's pause or request that lands between is seen next tick."""
        reply = self._fetch_index(keys=[self.schedule_key, self.lock_key, self.run_now_key], args=[token, limit])
        size = len(WIRE["index"])
        [index] = records(reply[:size], "index")
        count = int(index["due"]) * len(WIRE["slot"])
        slots = records(reply[size : size + count], "slot")
        requested = {self.key(r["name"]): int(r["stamp"]) for r in records(reply[size + count :], "request")}
        due_keys = {slot["key"] for slot in slots}
        extra = [key for key in requested if key not in due_keys]
        head_key = index["head_key"]
        keys = [slot["key"] for slot in slots] + extra + ([head_key] if head_key else [])
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, "definition", "meta", "paused")
            for key in extra:
                pipe.zscore(self.schedule_key, key)
            fields = pipe.execute() if keys else []
        hashes = dict(zip(keys, fields[: len(keys)], strict=True))
        scores = dict(zip(extra, fields[len(keys) :], strict=True))
        listed = [(slot["key"], slot["score"], True) for slot in slots] + [(key, scores[key], False) for key in extra]
        entries = [
            DueEntry(
                key,
                _float(score),
                hashes[key][0],
                hashes[key][1],
                paused=hashes[key][2] is not None,
                requested=requested.get(key),
                due=is_due,
            )
            for key, score, is_due in listed
        ]
        return Due.read(index, entries, hashes[head_key] if head_key else (None, None))

    def commit(self, token: str, updates: Sequence[Update]) -> int:
        """One round trip: new scores and metas, and the run-now requests served, fenced. Raises LostLockError when
        the lock is not ours."""
        args: list[str | float] = [token, self.prefix]
        for update in updates:
            score = "" if update.score is None else repr(update.score)
            served = "" if update.served is None else str(update.served)
            args += flatten("update", {"score": score, "meta": update.meta, "served": served})
        keys = [self.lock_key, self.schedule_key, self.run_now_key, *(update.key for update in updates)]
        written = int(self._commit(keys=keys, args=args))
        if written < 0:
            raise LostLockError(self.lock_key)
        self.replicate()
        return written

    def replicate(self) -> None:
        """Wait (Redis WAIT, at most ``replica_wait`` seconds) until ``replicas`` replicas hold what this client wrote
        to the schedule's master; fewer is logged and the tick goes on (the write stands on the master).

        Waiting only helps while the replicas can answer: after a failover the promoted master has none until the old
        one returns, and a returning replica is still syncing, or catching up, for a while. Each such write would hold
        the tick for ``replica_wait`` until the beat fell behind its own schedule. So once a WAIT falls short, the
        next writes first ask the master how many of its replicas are online (INFO replication: in sync, not
        loading) and, when there are enough, wait only ``PROBE_WAIT``; the full wait comes back once a WAIT is
        answered in time."""
        if not self.replicas:
            return
        wait = self.replica_wait
        if self.replicas_short:
            if self._online_replicas() < self.replicas:
                return
            wait = min(wait, PROBE_WAIT)
        acked = int(self._on_master("WAIT", self.replicas, max(int(wait * 1000), 1)))
        if acked >= self.replicas:
            if self.replicas_short:
                logger.info("beat: schedule writes reach %d replica(s) again", acked)
            self.replicas_short = False
        elif not self.replicas_short:
            self.replicas_short = True
            logger.warning("beat: a schedule write reached %d of %d replica(s) within %.1fs: a failover now could "
                           "roll it back (its slots would be sent again, and dropped by the workers' dedupe); until "
                           "%d replica(s) answer again, writes do not wait for them", acked, self.replicas,
                           self.replica_wait, self.replicas)  # fmt: skip

    def _online_replicas(self) -> int:
        """The master's replicas that are in sync (INFO replication's ``slaveN`` with ``state=online``)."""
        info = self._on_master("INFO", "replication")
        replicas = [replica for name, replica in info.items() if name.startswith("slave") and isinstance(replica, dict)]
        return sum(1 for replica in replicas if replica.get("state") == "online")

    def _on_master(self, *args: Any) -> Any:
        """A command on the node that holds the schedule (on a cluster, the master of its slot)."""
        if isinstance(self.client, RedisCluster):
            return self.client.execute_command(*args, target_nodes=self.client.get_node_from_key(self.schedule_key))
        return self.client.execute_command(*args)

    # --- start-up sync ----------------------------------------------------------------------------------------

    def read_statics(self) -> set[str]:
        """The names of the static entries the store holds."""
        members: set[str] = self.client.smembers(self.statics_key)  # type: ignore[assignment]  # decoded responses
        return members

    def read_metas(self, names: Sequence[str]) -> tuple[float, list[str | None]]:
        """One round trip: server time and the stored meta of each of ``names``."""
        seconds, micros, *metas = self._read_metas(keys=[self.key(name) for name in names])
        return int(seconds) + int(micros) / 1e6, [meta or None for meta in metas]

    def seed(self, token: str, prune: Iterable[str], entries: Sequence[Seed]) -> tuple[int, int]:
        """Prune ``prune`` and write ``entries``, fenced, in slices of SEED_SLICE. Raises LostLockError."""
        pruned_names = list(prune)
        pruned = written = 0
        for start in range(0, max(len(entries), 1), SEED_SLICE):
            args: list[str | float | int] = [token, len(pruned_names), *pruned_names]
            chunk = entries[start : start + SEED_SLICE]
            for seed in chunk:
                args += flatten("seed", {**seed.__dict__, "score": repr(seed.score)})
            keys = [self.lock_key, self.schedule_key, self.statics_key, *map(self.key, pruned_names),
                    *(self.key(seed.name) for seed in chunk)]  # fmt: skip
            reply = self._seed(keys=keys, args=args)
            if reply == -1:
                raise LostLockError(self.lock_key)
            pruned += int(reply[0])
            written += int(reply[1])
            pruned_names = []  # pruned by the first slice
        self.replicate()
        return pruned, written
