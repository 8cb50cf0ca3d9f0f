"""Test settings and service fixtures.

Tests own Redis DBs 11-15 on the machine's Redis (the platform's plan uses 0 and 7-10) and flush only those.
A test that needs a service which is not answering is skipped with the reason, except when
``BKM_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where the skip becomes a failure (``tests/gate.py``); under that
gate any other skip also fails the run.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Iterator

import pytest

from tests.gate import install_skip_gate, skip_or_fail

TEST_DB_PLAN = {"log": 11, "cache": 12, "queue": 13, "service": 14}
TEST_REDBEAT_DB = 15
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672

# Before Django reads settings: every test process (and every process a test starts) sees these.
os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
os.environ["BKAPP_SETTINGS_REDIS_DB_PLAN"] = json.dumps(TEST_DB_PLAN)
os.environ["BKAPP_SETTINGS_REDBEAT_REDIS_DB"] = str(TEST_REDBEAT_DB)
os.environ.setdefault("BKM_RUN_DIR", tempfile.mkdtemp(prefix="bkm-test-run-"))
for _var in ("DJANGO_CONF_MODULE", "BK_MONITOR_RABBITMQ_HOST", "BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME"):
    os.environ.pop(_var, None)
# The suite runs single-node unless a test configures Consul itself. A real agent named by CONSUL_HTTP_ADDR is
# kept for the Consul tests (the `consul_agent` fixture), which otherwise start the in-repo fake agent. Processes
# the tests start import this module too: they keep the environment the test gave them.
if not os.environ.get("BKM_TEST_ENV"):
    os.environ["BKM_TEST_ENV"] = "1"
    if os.environ.get("CONSUL_HTTP_ADDR"):
        os.environ.setdefault("TEST_CONSUL_HTTP_ADDR", os.environ["CONSUL_HTTP_ADDR"])
    for _var in (
        "CONSUL_HTTP_ADDR",
        "CONSUL_HOST",
        "CONSUL_PORT",
        "BK_MONITOR_CONSUL_HOST",
        "BK_MONITOR_CONSUL_PORT",
        "BK_CONSUL_HTTPS_PORT",
        "BK_MONITOR_HOST_ADDR",
        "DEPLOY_MODE",
    ):
        os.environ.pop(_var, None)

import django  # noqa: E402

django.setup()

from tests.fakeconsul.fixture import consul_agent  # noqa: E402, F401  (a fixture for every test module)


def pytest_configure(config: pytest.Config) -> None:
    # Under BKM_REQUIRE_SERVICES=1 a skip that bypassed skip_or_fail (a skipif mark, a bare pytest.skip) still
    # fails the run: CI must not pass while a test did not run.
    install_skip_gate(config)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _answers(host, port):
        return
    skip_or_fail(f"{name} is not answering on {host}:{port}")


@pytest.fixture
def redis_service() -> None:
    require_service("Redis", REDIS_HOST, REDIS_PORT)


@pytest.fixture
def rabbitmq_service() -> None:
    require_service("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)


@pytest.fixture
def redis_dbs(redis_service: None) -> Iterator[None]:
    """The test DBs, empty before and after the test; the platform's storage clients are reset around it."""
    import redis

    from alarm_backends.core.storage.redis import close_all

    dbs = [*TEST_DB_PLAN.values(), TEST_REDBEAT_DB]
    for db in dbs:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    close_all()
    yield
    close_all()
    for db in dbs:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
