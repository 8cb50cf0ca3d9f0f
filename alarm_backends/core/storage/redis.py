"""One Redis client per DB role of the plan: ``log`` (7), ``cache`` (8), ``queue`` (9), ``service`` (10).

``cache`` lives on the cache Redis (``BK_MONITOR_CACHE_REDIS_*``), the others on the main one; each works in
standalone and Sentinel mode. Clients are created once per process (per role) and reused; after a fork the
connection pool reconnects by itself (redis-py checks the pid).

Product code imports the original's names from here: the role clients, ``key`` and ``Cache(backend)``.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings

from alarm_backends.core.cluster import get_cluster
from alarm_backends.core.storage import cache
from alarm_backends.core.storage.cache import Cache
from alarm_backends.core.storage.clients import (
    CACHE,
    CONNECT_TIMEOUT,
    LOG,
    QUEUE,
    ROLES,
    SERVICE,
    SOCKET_TIMEOUT,
    build_client,
    db_of,
    server_settings,
)

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


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
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
    cache.close_all()


def key(*parts: str) -> str:
    """A key scoped by app code and cluster: ``<APP_CODE>.<cluster>.<part>.<part>``."""
    return ".".join((settings.APP_CODE, get_cluster().name, *parts))


__all__ = ["CACHE", "CONNECT_TIMEOUT", "LOG", "QUEUE", "ROLES", "SERVICE", "Cache", "build_client", "close_all",
           "db_of", "describe_role", "get_client", "key", "server_settings"]  # fmt: skip
