"""The setting names the original's product code reads, derived from this platform's own settings.

Derived after the overrides, so the two spellings always agree: ``REDIS_LOG_CONF``, ``REDIS_CACHE_CONF``,
``REDIS_CELERY_CONF`` / ``REDIS_QUEUE_CONF`` and ``REDIS_SERVICE_CONF`` (the original's ``{"host", "port", "db",
"password"}`` dicts, the DBs of ``REDIS_DB_PLAN``; the service one with ``socket_timeout`` 10, the cache one with the
sentinel master and password), ``CACHE_BACKEND_TYPE`` (``RedisCache`` / ``SentinelRedisCache``), ``REDIS_PASSWD``,
``REDIS_MASTER_NAME`` and ``REDIS_SENTINEL_PASS``. In sentinel mode a dict's host is the original's ``a;b;c`` list of
sentinels and its port theirs. A name set explicitly (``BKAPP_SETTINGS_REDIS_LOG_CONF``) is left as set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.tools.redis import SENTINEL


def _where(conf: Mapping[str, Any], prefix: str) -> tuple[str, int]:
    sentinels = conf[f"{prefix}SENTINEL_HOSTS"]
    if conf[f"{prefix}MODE"] == SENTINEL and sentinels:
        return ";".join(str(host) for host, _ in sentinels), int(sentinels[0][1])
    return str(conf[f"{prefix}HOST"]), int(conf[f"{prefix}PORT"])


def original_names(conf: Mapping[str, Any]) -> dict[str, Any]:
    """The original's names, from ``conf`` (the settings namespace); those already in ``conf`` are not returned."""
    plan = conf["REDIS_DB_PLAN"]
    host, port = _where(conf, "REDIS_")
    cache_host, cache_port = _where(conf, "CACHE_REDIS_")
    password = conf["REDIS_PASSWORD"]

    def main(role: str, **extra: Any) -> dict[str, Any]:
        return {"host": host, "port": port, "db": int(plan[role]), "password": password, **extra}

    queue = main("queue")
    names = {
        "CACHE_BACKEND_TYPE": "SentinelRedisCache" if conf["REDIS_MODE"] == SENTINEL else "RedisCache",
        "REDIS_PASSWD": password,
        "REDIS_MASTER_NAME": conf["REDIS_SENTINEL_MASTER_NAME"],
        "REDIS_SENTINEL_PASS": conf["REDIS_SENTINEL_PASSWORD"],
        "REDIS_LOG_CONF": main("log"),
        "REDIS_CELERY_CONF": queue,
        "REDIS_QUEUE_CONF": queue,
        "REDIS_SERVICE_CONF": main("service", socket_timeout=10),
        "REDIS_CACHE_CONF": {
            "host": cache_host,
            "port": cache_port,
            "db": int(plan["cache"]),
            "password": conf["CACHE_REDIS_PASSWORD"],
            "master_name": conf["CACHE_REDIS_SENTINEL_MASTER_NAME"],
            "sentinel_password": conf["CACHE_REDIS_SENTINEL_PASSWORD"],
        },
    }
    return {name: value for name, value in names.items() if name not in conf}
