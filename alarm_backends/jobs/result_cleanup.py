"""Celery result keys without a TTL in the queue DB get the app's ``result_expires``.

The Redis result backend sets a TTL only while ``result_expires`` is set: results stored by a process running
without it (an older deployment, a SaaS app with its own settings, a script) never expire and pile up in the
queue DB. Each run scans a bounded number of ``celery-task-meta-*`` keys and resumes where the
previous run stopped, so a large DB is covered over several runs without one long blocking pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from alarm_backends.core.storage.redis import CACHE, QUEUE, get_client, key
from alarm_backends.service.scheduler.app import app

PATTERN = "celery-task-meta-*"
SCAN_COUNT = 1000
MAX_KEYS_PER_RUN = 100_000
DEFAULT_EXPIRES = int(timedelta(days=1).total_seconds())


@dataclass(frozen=True)
class Cleanup:
    """Keys looked at, keys given a TTL, the TTL used, and whether the scan finished a full pass of the DB."""

    scanned: int
    fixed: int
    expires: int
    completed: bool


def result_expires(value: object = None) -> int:
    """``result_expires`` in whole seconds (a timedelta or a number); unset or not positive means one day."""
    if value is None:
        value = app.conf.result_expires
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
    elif isinstance(value, int | float):
        seconds = int(value)
    else:
        seconds = 0
    return seconds if seconds > 0 else DEFAULT_EXPIRES


def cursor_key() -> str:
    return key("result", "cleanup", "cursor")


def fix_batch(keys: list[str], expires: int) -> int:
    """Give the keys of ``keys`` that have no TTL one of ``expires`` seconds; the number changed."""
    if not keys:
        return 0
    client = get_client(QUEUE)
    with client.pipeline(transaction=False) as pipe:
        for name in keys:
            pipe.ttl(name)
        ttls = pipe.execute()
    # -1: exists without a TTL; -2 (gone since the scan) and positive TTLs are left alone.
    missing = [name for name, ttl in zip(keys, ttls, strict=True) if ttl == -1]
    if missing:
        with client.pipeline(transaction=False) as pipe:
            for name in missing:
                pipe.expire(name, expires)
            pipe.execute()
    return len(missing)


def main(max_keys: int = MAX_KEYS_PER_RUN) -> Cleanup:
    """Scan up to ``max_keys`` result keys from the saved SCAN cursor and expire those without a TTL."""
    expires = result_expires()
    queue, cache = get_client(QUEUE), get_client(CACHE)
    cursor = int(cache.get(cursor_key()) or 0)
    scanned = fixed = 0
    while True:
        cursor, found = queue.scan(cursor=cursor, match=PATTERN, count=SCAN_COUNT)
        # The storage clients decode responses: key names come back as str.
        keys = cast(list[str], found)
        scanned += len(keys)
        fixed += fix_batch(keys, expires)
        if cursor == 0 or scanned >= max_keys:
            break
    # Cursor 0 means the pass is complete: the next run starts a new one.
    cache.set(cursor_key(), cursor)
    return Cleanup(scanned=scanned, fixed=fixed, expires=expires, completed=cursor == 0)
