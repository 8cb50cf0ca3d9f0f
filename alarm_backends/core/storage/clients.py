"""Redis clients by DB role, built from settings: which server a role lives on, its DB in the plan, and a client
for it (direct, or through Sentinel). ``redis`` keeps one shared client per role; ``cache`` routes the original's
backend names onto these roles.
"""

from __future__ import annotations

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


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown Redis DB role {role!r}: expected one of {', '.join(ROLES)}")


def server_settings(role: str) -> RedisSettings:
    _check_role(role)
    return cache_redis(settings) if role == CACHE else main_redis(settings)


def db_of(role: str) -> int:
    """``role``'s DB in the plan (read on every scheduled run's release: the role checked, no server settings
    built)."""
    _check_role(role)
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
