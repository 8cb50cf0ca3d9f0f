"""The setting names the original's product code reads, derived from this platform's settings (the original's
config/role/worker.py is the oracle for their shapes)."""

from __future__ import annotations

from typing import Any

from config.tools.compat import original_names
from config.tools.redis import STANDALONE, get_cache_redis_settings, get_redis_settings, to_settings

PLAN = {"log": 7, "cache": 8, "queue": 9, "service": 10}


def settings_of(environ: dict[str, str]) -> dict[str, Any]:
    main = get_redis_settings(environ, default_mode=STANDALONE)
    cache = get_cache_redis_settings(environ, main)
    return {**to_settings(main, "REDIS_"), **to_settings(cache, "CACHE_REDIS_"), "REDIS_DB_PLAN": PLAN}


def test_standalone_as_the_originals_worker_settings() -> None:
    names = original_names(settings_of({"BK_MONITOR_REDIS_HOST": "r", "BK_MONITOR_REDIS_PASSWORD": "pw"}))
    assert names["CACHE_BACKEND_TYPE"] == "RedisCache"
    assert names["REDIS_LOG_CONF"] == {"host": "r", "port": 6379, "db": 7, "password": "pw"}
    assert names["REDIS_CELERY_CONF"] == names["REDIS_QUEUE_CONF"] == {"host": "r", "port": 6379, "db": 9,
                                                                       "password": "pw"}  # fmt: skip
    assert names["REDIS_SERVICE_CONF"] == {"host": "r", "port": 6379, "db": 10, "password": "pw", "socket_timeout": 10}
    assert names["REDIS_CACHE_CONF"] == {"host": "r", "port": 6379, "db": 8, "password": "pw",
                                         "master_name": "mymaster", "sentinel_password": ""}  # fmt: skip
    assert (names["REDIS_PASSWD"], names["REDIS_MASTER_NAME"], names["REDIS_SENTINEL_PASS"]) == ("pw", "mymaster", "")


def test_sentinel_hosts_as_the_originals_list() -> None:
    environ = {"BK_MONITOR_REDIS_MODE": "sentinel", "BK_MONITOR_REDIS_SENTINEL_HOST": "s1;s2",
               "BK_MONITOR_REDIS_SENTINEL_PORT": "26380", "BK_MONITOR_REDIS_SENTINEL_PASSWORD": "spw"}  # fmt: skip
    names = original_names(settings_of(environ))
    assert names["CACHE_BACKEND_TYPE"] == "SentinelRedisCache"
    assert (names["REDIS_LOG_CONF"]["host"], names["REDIS_LOG_CONF"]["port"]) == ("s1;s2", 26380)
    assert names["REDIS_SENTINEL_PASS"] == "spw"


def test_a_name_set_explicitly_is_kept() -> None:
    conf = {**settings_of({}), "REDIS_LOG_CONF": {"host": "elsewhere", "port": 1, "db": 3, "password": ""}}
    assert "REDIS_LOG_CONF" not in original_names(conf)
