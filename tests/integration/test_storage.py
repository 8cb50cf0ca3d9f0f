"""One client per DB role: the right DB on the right server, standalone and Sentinel."""

from __future__ import annotations

import pytest
import redis
from django.test import override_settings
from redis.sentinel import SentinelConnectionPool

from alarm_backends.core.storage.redis import (
    CACHE,
    LOG,
    QUEUE,
    SERVICE,
    build_client,
    close_all,
    db_of,
    describe_role,
    get_client,
    key,
)
from config.tools.redis import SENTINEL, RedisSettings
from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_DB_PLAN


@pytest.mark.redis
def test_each_role_writes_to_its_own_db(redis_dbs: None) -> None:
    for role in TEST_DB_PLAN:  # the roles the test plan gives a DB of its own
        get_client(role).set("test.storage.role", role)
    for role, db in TEST_DB_PLAN.items():
        raw = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, decode_responses=True)
        assert raw.get("test.storage.role") == role
    assert get_client(LOG) is get_client(LOG)  # one shared client per role


def test_roles_and_descriptions() -> None:
    assert [db_of(role) for role in (LOG, CACHE, QUEUE, SERVICE)] == [11, 12, 13, 14]
    assert describe_role(SERVICE) == "redis service db 14 at 127.0.0.1:6379"
    assert key("scheduler", "heartbeat") == "bkmonitorv3.default.scheduler.heartbeat"
    with pytest.raises(ValueError, match="unknown Redis DB role 'logs'"):
        get_client("logs")


def test_every_client_has_a_socket_timeout() -> None:
    close_all()
    try:
        for role in ("log", "cache", "queue", "service"):
            assert get_client(role).connection_pool.connection_kwargs["socket_timeout"] == 10.0, role
    finally:
        close_all()


def test_cache_role_follows_the_cache_redis_settings() -> None:
    close_all()
    try:
        with override_settings(CACHE_REDIS_HOST="cache.example", CACHE_REDIS_PORT=6390, CACHE_REDIS_PASSWORD="c/p"):
            kwargs = get_client(CACHE).connection_pool.connection_kwargs
            assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
                "cache.example",
                6390,
                12,
                "c/p",
            )
            assert describe_role(CACHE) == "redis cache db 12 at cache.example:6390"
    finally:
        close_all()


def test_sentinel_client_asks_the_sentinels_for_the_master() -> None:
    conf = RedisSettings(
        mode=SENTINEL,
        host="s1",
        port=26379,
        password="pw",
        master_name="master0",
        sentinel_password="spw",
        sentinels=(("s1", 26379), ("s2", 26380)),
    )
    client = build_client(conf, 9, socket_timeout=10.0)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "master0"
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (9, "pw")
    sentinels = pool.sentinel_manager.sentinels
    assert sorted(s.connection_pool.connection_kwargs["port"] for s in sentinels) == [26379, 26380]
    assert {s.connection_pool.connection_kwargs["password"] for s in sentinels} == {"spw"}


@pytest.mark.redis
def test_the_originals_cache_factory_gives_each_backend_its_db(
    redis_dbs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alarm_backends.core.storage.redis import Cache  # where product code imports it from

    for backend in ("log", "cache", "queue", "celery", "service"):
        Cache(backend).set(f"test.cache.{backend}", backend)
    for backend, db in [("log", 11), ("cache", 12), ("queue", 13), ("celery", 13), ("service", 14)]:
        raw = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, decode_responses=True)
        assert raw.get(f"test.cache.{backend}") == backend
    assert Cache("cache") is Cache("cache")  # one client per backend and process, as the original's singleton
    assert Cache("cache").readonly_instance is Cache("cache")  # a standalone server has no replica to read from
    assert Cache("service").connection_pool.connection_kwargs["socket_timeout"] == 10.0

    # A routed backend: the role's DB (the URL's /0 is not used, as in the original) on the URL's server, here
    # the same one, reached through the URL.
    monkeypatch.setenv("REDIS_CACHE_CMDB_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/0")
    Cache("cache-cmdb").set("test.cache.cmdb", "routed")
    assert (
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=12, decode_responses=True).get("test.cache.cmdb") == "routed"
    )
    assert Cache("cache-cmdb") is not Cache("cache")
    with pytest.raises(ValueError, match="unknown redis backend 'nosuch'"):
        Cache("nosuch")
    with pytest.raises(NotImplementedError, match="delay queue"):
        Cache("queue").delay("rpush", "q", "v", delay=1)


def test_a_sentinel_backend_reads_from_a_replica() -> None:
    from alarm_backends.core.storage.cache import CacheClient

    conf = RedisSettings(mode=SENTINEL, host="s1", port=26379, master_name="m0", sentinels=(("s1", 26379),))
    primary = build_client(conf, 8, redis_class=CacheClient)
    replica = build_client(conf, 8, replica=True)
    assert isinstance(primary, CacheClient)
    pools = [primary.connection_pool, replica.connection_pool]
    assert [pool.is_master for pool in pools if isinstance(pool, SentinelConnectionPool)] == [True, False]
