"""Memory, clients and key counts of every Redis DB role, recorded in the cache DB once a minute.

Fields are ``<role>.<metric>``: ``up`` (1/0), ``db``, ``used_memory``, ``used_memory_peak``, ``maxmemory``,
``connected_clients``, ``blocked_clients``, ``keys``, ``expires``, plus ``ts``. The server-wide values repeat for
roles that share a server; ``keys`` and ``expires`` are the role's own DB. A role whose Redis cannot be reached
is recorded as ``<role>.up = 0`` and the others are still collected; only a cache DB that cannot take the record
fails the job.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from alarm_backends.core.storage.redis import CACHE, ROLES, db_of, describe_role, get_client, key
from alarm_backends.jobs.records import replace_hash

logger = logging.getLogger("cron")

SERVER_FIELDS = ("used_memory", "used_memory_peak", "maxmemory", "connected_clients", "blocked_clients")
DB_FIELDS = ("keys", "expires")


def role_metrics(role: str) -> dict[str, int]:
    """One role's metrics from ``INFO`` (``up`` = 0 and nothing else when its Redis does not answer)."""
    db = db_of(role)
    try:
        info: dict[str, Any] = get_client(role).info()
    except redis.RedisError as exc:
        logger.error("redis metrics: %s is unreachable: %s", describe_role(role), exc)
        return {"up": 0, "db": db}
    # INFO lists only DBs that hold keys: an empty DB has no db<N> line.
    keyspace = info.get(f"db{db}") or {}
    metrics = {"up": 1, "db": db}
    metrics.update({name: int(info.get(name, 0)) for name in SERVER_FIELDS})
    metrics.update({name: int(keyspace.get(name, 0)) for name in DB_FIELDS})
    return metrics


def collect_redis_metric() -> dict[str, int]:
    """Collect every role's metrics and replace ``key("redis", "metric")`` in the cache DB with them."""
    collected = {f"{role}.{name}": value for role in ROLES for name, value in role_metrics(role).items()}
    fields = {**{name: str(value) for name, value in collected.items()}, "ts": str(time.time())}
    replace_hash(CACHE, key("redis", "metric"), fields)
    return collected
