"""``Cache(backend)``: the original's Redis client factory, which product code imports from
``alarm_backends.core.storage.redis``.

``backend`` is a DB role of the plan — ``log``, ``cache``, ``queue``, ``service``, or ``celery`` (the queue DB, as
the original's ``REDIS_CELERY_CONF``) — or a routed name ``<role>-<name>`` (``cache-cmdb``): the role's DB on the
server ``REDIS_CACHE_<NAME>_URL`` names (``redis://`` or ``sentinel://``, see ``config.tools.redis.parse_redis_url``),
or on the role's own server when the variable is unset. The variable is read when a backend is first used, as the
original reads it. Each backend has one client per process; ``client.readonly_instance`` reads from a replica in
Sentinel mode (the client itself on a standalone server).

Not provided: ``Cache(backend, connection_conf)`` with a hand-made configuration, and ``Cache(…).delay(…)`` (it feeds
the alarm pipeline's delay queue, whose consumer is not part of this platform); both raise rather than do nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

from alarm_backends.core.storage.clients import SOCKET_TIMEOUT, build_client, db_of, server_settings
from config.tools.redis import RedisSettings, parse_redis_url

# The original's backend names and the DB role each uses.
BACKEND_ROLES = {"log": "log", "cache": "cache", "queue": "queue", "celery": "queue", "service": "service"}
URL_VARIABLE = "REDIS_CACHE_{name}_URL"


@dataclass(frozen=True)
class Route:
    backend: str
    role: str  # whose DB the backend uses, and whose server when ``server`` is None
    server: RedisSettings | None = None
    variable: str = ""  # the variable that routed it, for messages


def route(backend: str, environ: Mapping[str, str], default_password: str = "") -> Route:
    """Where ``backend`` lives. Raises ValueError for a name that is neither a role nor ``<role>-<name>``."""
    if backend in BACKEND_ROLES:
        return Route(backend, BACKEND_ROLES[backend])
    role, dash, name = backend.partition("-")
    if not dash or not name or role not in BACKEND_ROLES:
        raise ValueError(
            f"unknown redis backend {backend!r}: expected one of {', '.join(BACKEND_ROLES)} or <one of them>-<name>"
        )
    variable = URL_VARIABLE.format(name=name.upper())
    url = environ.get(variable)
    server = parse_redis_url(url, variable, default_password) if url else None
    return Route(backend, BACKEND_ROLES[role], server, variable)


class CacheClient(redis.Redis):
    """A redis-py client with the original client's ``readonly_instance``."""

    replica: redis.Redis | None = None

    @property
    def readonly_instance(self) -> redis.Redis:
        return self.replica if self.replica is not None else self

    def delay(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "Cache(...).delay feeds the alarm pipeline's delay queue, which this platform does not run"
        )


_clients: dict[str, CacheClient] = {}
_lock = threading.Lock()


def _build(target: Route) -> CacheClient:
    conf = target.server or server_settings(target.role)
    options: dict[str, Any] = {"socket_timeout": SOCKET_TIMEOUT.get(target.role), "redis_class": CacheClient}
    client = build_client(conf, db_of(target.role), **options)
    assert isinstance(client, CacheClient)
    if conf.is_sentinel:
        client.replica = build_client(conf, db_of(target.role), replica=True, **options)
    return client


def Cache(backend: str, connection_conf: Mapping[str, Any] | None = None) -> CacheClient:  # noqa: N802
    """The process's client for ``backend`` (a class in the original, whose constructor returned the shared one)."""
    if connection_conf is not None:
        raise TypeError("Cache(backend, connection_conf) is not supported: configure the backend by its role or URL")
    with _lock:
        client = _clients.get(backend)
        if client is None:
            client = _clients[backend] = _build(route(backend, os.environ, settings.REDIS_PASSWORD))
        return client


def close_all() -> None:
    with _lock:
        for client in _clients.values():
            if client.replica is not None:
                client.replica.close()
            client.close()
        _clients.clear()
