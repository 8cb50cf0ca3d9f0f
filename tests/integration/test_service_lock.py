"""``share_lock`` and ``ServiceLock`` against the real Redis service DB (test DB 14)."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis

from alarm_backends.core.lock.service_lock import ServiceLock, lock_key, share_lock
from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_DB_PLAN
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.redis


@pytest.fixture
def service(redis_dbs: None) -> redis.Redis:
    """A direct client on the service test DB, independent of the platform's clients."""
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB_PLAN["service"], decode_responses=True)


def test_key_name_is_cluster_scoped() -> None:
    assert lock_key("refresh") == "default_celery_lock_refresh"
    assert ServiceLock("refresh").key == "default_celery_lock_refresh"


def test_decorated_call_holds_a_uuid_token_and_releases_it(service: redis.Redis) -> None:
    seen: list[tuple[object, int]] = []

    @share_lock(ttl=30)
    def refresh_cache(value: int) -> int:
        seen.append(
            (service.get("default_celery_lock_refresh_cache"), service.ttl("default_celery_lock_refresh_cache"))
        )
        return value * 2

    assert refresh_cache(21) == 42

    token, ttl = seen[0]
    assert isinstance(token, str) and uuid.UUID(token).version == 4
    assert 0 < ttl <= 30
    assert service.exists("default_celery_lock_refresh_cache") == 0


def test_identify_names_the_lock(service: redis.Redis) -> None:
    @share_lock(identify="cmdb_10.0.0.1")
    def cache_cmdb_resource() -> bool:
        return bool(service.exists("default_celery_lock_cmdb_10.0.0.1"))

    assert cache_cmdb_resource() is True


def test_second_acquire_while_held_returns_none(service: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    @share_lock()
    def report() -> str:
        runs.append(1)
        return "ran"

    holder = ServiceLock("report")
    assert holder.acquire() is True
    with caplog.at_level(logging.INFO, logger="cron"):
        assert report() is None
    assert runs == []
    assert "default_celery_lock_report" in caplog.text
    assert service.get("default_celery_lock_report") == holder.token  # the skipped call left the lock alone

    assert holder.release() is True
    assert report() == "ran" and runs == [1]


def test_nested_call_is_skipped(service: redis.Redis) -> None:
    @share_lock()
    def outer(depth: int) -> str:
        inner = outer(depth + 1) if depth == 0 else "not skipped"
        return f"inner returned {inner}"

    assert outer(0) == "inner returned None"


def test_release_by_non_owner_does_not_delete(service: redis.Redis) -> None:
    owner, other = ServiceLock("sync"), ServiceLock("sync")
    assert owner.acquire() is True
    assert other.acquire() is False
    other.token = str(uuid.uuid4())  # a stale token, as held by a run whose lock expired

    assert other.release() is False
    assert service.get("default_celery_lock_sync") == owner.token
    assert owner.release() is True
    assert service.exists("default_celery_lock_sync") == 0


def test_expired_lock_is_retaken_and_the_old_holder_cannot_release_it(service: redis.Redis) -> None:
    first, second = ServiceLock("slow", ttl=60), ServiceLock("slow", ttl=60)
    assert first.acquire() is True
    service.pexpire("default_celery_lock_slow", 20)  # the run outlives its TTL
    wait_for(lambda: service.exists("default_celery_lock_slow") == 0, 5, "the lock's key to expire")

    assert second.acquire() is True
    assert first.release() is False
    assert service.get("default_celery_lock_slow") == second.token


def test_lock_is_released_when_the_call_raises(service: redis.Redis) -> None:
    @share_lock()
    def fails() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fails()
    assert service.exists("default_celery_lock_fails") == 0


def test_context_manager_reports_acquisition(service: redis.Redis) -> None:
    with ServiceLock("ctx") as acquired:
        assert acquired is True
        with ServiceLock("ctx") as again:
            assert again is False
        assert service.exists("default_celery_lock_ctx") == 1
    assert service.exists("default_celery_lock_ctx") == 0
