"""One Redis client per DB role of the plan: ``log`` (7), ``cache`` (8), ``queue`` (9), ``service`` (10).

``cache`` lives on the cache Redis (``BK_MONITOR_CACHE_REDIS_*``), the others on the main one; each works in
standalone and Sentinel mode. Clients are created once per process (per role) and reused; after a fork the
connection pool reconnects by itself (redis-py checks the pid).
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.conf import settings
from redis.sentinel import Sentinel

from config.tools.celery import cache_redis, main_redis
from config.tools.redis import RedisSettings, shuffled_sentinels

LOG = "log"
CACHE = "cache"
QUEUE = "queue"
SERVICE = "service"
ROLES = (LOG, CACHE, QUEUE, SERVICE)

# No call may hang a worker or beat forever on a server that stopped answering: every role's client has a socket
# timeout (redis-py then retries, and raises). 10 s, the original's for the service DB (locks, dedupe marks); none of
# the platform's calls blocks on the server (no BRPOP, XREAD BLOCK or subscription on these clients), so no call
# legitimately waits that long. Product code's own blocking reads use their own clients.
SOCKET_TIMEOUT = dict.fromkeys(ROLES, 10.0)
CONNECT_TIMEOUT = 5.0

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def server_settings(role: str) -> RedisSettings:
    if role not in ROLES:
        raise ValueError(f"unknown Redis DB role {role!r}: expected one of {', '.join(ROLES)}")
    return cache_redis(settings) if role == CACHE else main_redis(settings)


def db_of(role: str) -> int:
    server_settings(role)  # validates the role
    return int(settings.REDIS_DB_PLAN[role])


def build_client(
    conf: RedisSettings,
    db: int,
    *,
    socket_timeout: float | None = None,
    replica: bool = False,
    redis_class: type[redis.Redis] = redis.Redis,
) -> redis.Redis:
    """A client for ``db`` on ``conf``'s server: a direct connection, or the current master via Sentinel (with
    ``replica``, a replica the sentinels name, for reads that may lag; standalone, the server itself)."""
    options: dict[str, Any] = {
        "db": db,
        "password": conf.password or None,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": 30,
        "decode_responses": True,
    }
    if conf.is_sentinel:
        sentinel_kwargs = {"password": conf.sentinel_password} if conf.sentinel_password else {}
        sentinel = Sentinel(
            shuffled_sentinels(conf), sentinel_kwargs=sentinel_kwargs, socket_connect_timeout=CONNECT_TIMEOUT
        )
        pick = sentinel.slave_for if replica else sentinel.master_for
        return pick(conf.master_name, redis_class=redis_class, **options)
    return redis_class(host=conf.host, port=conf.port, **options)


def get_client(role: str) -> redis.Redis:
    """The shared client of a DB role."""
    with _lock:
        client = _clients.get(role)
        if client is None:
            client = build_client(server_settings(role), db_of(role), socket_timeout=SOCKET_TIMEOUT.get(role))
            _clients[role] = client
        return client


def describe_role(role: str) -> str:
    """Where a role's DB lives, password left out — for error messages and logs."""
    conf = server_settings(role)
    where = f"sentinel {conf.master_name}@{conf.host}:{conf.port}" if conf.is_sentinel else f"{conf.host}:{conf.port}"
    return f"redis {role} db {db_of(role)} at {where}"


def close_all() -> None:
    """Drop every client (tests, and after settings change)."""
    from alarm_backends.core.storage import cache

    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
    cache.close_all()


def key(*parts: str) -> str:
    """A key scoped by app code and cluster: ``<APP_CODE>.<cluster>.<part>.<part>``."""
    from alarm_backends.core.cluster import get_cluster

    return ".".join((settings.APP_CODE, get_cluster().name, *parts))


# The original's client factory, which product code imports from this module (defined beside it: it builds on the
# role clients above).
from alarm_backends.core.storage.cache import Cache  # noqa: E402

__all__ = ["CACHE", "LOG", "QUEUE", "ROLES", "SERVICE", "Cache", "build_client", "close_all", "db_of", "describe_role",
           "get_client", "key", "server_settings"]  # fmt: skip
