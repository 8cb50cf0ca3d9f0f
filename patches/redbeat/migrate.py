"""Copy a schedule from one store to another: from the stock layout on a single Redis (``redbeat:``) to a hash-tagged
prefix on a Redis Cluster (``{redbeat}:``), or between any two prefixes or servers.

What a beat would not write again by itself is copied: each entry's hash (``definition``, ``meta`` with
``last_run_at`` and the run count, an operator's ``paused``), its score in ``:schedule`` (its next due time), the
``:statics`` set and pending run-now requests. The lock and the leader record stay behind: they belong to the beats
of each store.

The copy holds the target's lock for its whole length, taken as a beat takes it (``acquire.lua``) and renewed
before each slice of SLICE entries (a slice is written within a fraction of the lease), so no beat leads on the
target while it is half written, and a beat that leads there already makes the copy (and a dry run) refuse. The
old store is only read: its beats may go on leading until the new ones start. A slot they run after the copy is due
again on the new store, under the same id, and the workers' dedupe drops the second run.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from patches.redbeat.store import Store

SLICE = 1000


class MigrationError(Exception):
    """The copy cannot start, or cannot go on (the target's lock was lost)."""


@dataclass
class Copied:
    """What a copy did (or, dry, would do)."""

    entries: int = 0  # entry hashes written to the target
    kept: int = 0  # entries the target held already, left as they were (merge)
    orphans: list[str] = field(default_factory=list)  # keys in the source's index without a hash: not copied
    statics: int = 0
    run_now: int = 0


def migration_token() -> str:
    """A lock token in the beats' form (``<host>:<pid>:<random>``), so healthz names the copying process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def copy_schedule(source: Store, target: Store, lease: float, merge: bool = False, dry_run: bool = False) -> Copied:
    """Copy ``source``'s schedule into ``target``. Refuses a target that holds entries already unless ``merge``
    (then the target's own entries are kept as they are); ``dry_run`` reads both and writes nothing."""
    if source.prefix == target.prefix and _server(source.client) == _server(target.client):
        raise MigrationError(f"the source and the target are the same store ({target.prefix}*)")
    held = int(target.client.zcard(target.schedule_key))
    if held and not merge:
        raise MigrationError(
            f"the target already holds {held} entries in {target.schedule_key}: a beat has synced it; copy with merge "
            "to keep the target's own entries and add the others"
        )
    token = migration_token()
    if not (target.client.get(target.lock_key) is None if dry_run else target.acquire(token, lease)):
        holder: Any = target.client.get(target.lock_key)  # decoded replies
        raise MigrationError(
            f"{target.lock_key} is held ({holder}): a beat leads on the target store; stop it, then copy"
        )
    try:
        return _copy(source, target, token, lease, merge, dry_run)
    finally:
        if not dry_run:
            target.release(token)


def _copy(source: Store, target: Store, token: str, lease: float, merge: bool, dry_run: bool) -> Copied:
    copied = Copied()
    statics: set[str] = source.client.smembers(source.statics_key)  # type: ignore[assignment]  # decoded
    requests: dict[str, str] = source.client.hgetall(source.run_now_key)  # type: ignore[assignment]
    for chunk in _slices(source):
        names = [key[len(source.prefix) :] for key, _ in chunk]
        hashes = _read_hashes(source, [key for key, _ in chunk])
        present = _present(target, names) if merge else [False] * len(names)
        if not dry_run and not target.renew(token, lease):
            raise MigrationError(f"lost {target.lock_key} while copying: another process took it; nothing after "
                                 f"{copied.entries} entries was copied")  # fmt: skip
        with target.client.pipeline(transaction=False) as pipe:
            for (key, score), name, fields, there in zip(chunk, names, hashes, present, strict=True):
                if not fields:
                    copied.orphans.append(key)
                elif there:
                    copied.kept += 1
                else:
                    copied.entries += 1
                    copied.statics += name in statics
                    copied.run_now += name in requests
                    _write_entry(pipe, target, name, fields, score, name in statics, requests.get(name))
            if not dry_run:
                pipe.execute()
    return copied


def _server(client: Any) -> tuple[Any, ...]:
    """Where a client's commands go: host, port (or socket path, or Sentinel service) and DB; a cluster client by
    its startup nodes."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:  # redis-py's cluster client
        return ("cluster", *sorted(node.name for node in client.nodes_manager.startup_nodes.values()))
    kwargs = pool.connection_kwargs
    where = getattr(pool, "service_name", None) or kwargs.get("path") or (kwargs.get("host"), kwargs.get("port"))
    return (where, kwargs.get("db", 0))


def _slices(source: Store) -> Iterator[list[tuple[str, float]]]:
    """The source's index, SLICE entries at a time (ZRANGE by rank: an entry rescheduled meanwhile by a beat of the
    source may be read twice or not at all in a live store, so the copy is taken with its beats stopped, or
    repeated with merge)."""
    start = 0
    client: Any = source.client  # decoded replies: (member, score) pairs
    while chunk := client.zrange(source.schedule_key, start, start + SLICE - 1, withscores=True):
        yield [(str(key), float(score)) for key, score in chunk]
        start += SLICE


def _read_hashes(store: Store, keys: list[str]) -> list[dict[str, str]]:
    with store.client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        return list(pipe.execute())


def _present(target: Store, names: list[str]) -> list[bool]:
    with target.client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(target.key(name))
        return [bool(found) for found in pipe.execute()]


def _write_entry(
    pipe: Any, target: Store, name: str, fields: dict[str, str], score: float, static: bool, request: str | None
) -> None:
    key = target.key(name)
    pipe.delete(key)  # no field of an older copy left behind (a paused flag the source no longer has)
    pipe.hset(key, mapping=fields)
    pipe.zadd(target.schedule_key, {key: score})
    if static:
        pipe.sadd(target.statics_key, name)
    if request is not None:
        pipe.hset(target.run_now_key, name, request)
